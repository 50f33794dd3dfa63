"""Container health check: exit 0 when URL answers 200 (and, if a FIELD is named, its JSON has FIELD true).

    python healthcheck.py http://127.0.0.1:8000/status models_loaded

Standard library only, so that every image can run it without curl.
"""

import json
import sys
import urllib.request

# Below Docker's HEALTHCHECK --timeout (5 s), so a slow answer fails the check instead of hanging it.
TIMEOUT_S = 4.0


def is_healthy(url: str, required_field: str | None = None, timeout: float = TIMEOUT_S) -> bool:
    """Whether url answers 200 and, when required_field is given, a JSON object with that field true."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return False
            if required_field is None:
                return True
            body = json.load(response)
    except (OSError, ValueError):  # connection refused, timeout, HTTP error, invalid JSON
        return False
    return isinstance(body, dict) and body.get(required_field) is True


def main(argv: list[str]) -> int:
    """Check the URL given on the command line; print why it failed."""
    if not 1 <= len(argv) <= 2:
        print("usage: healthcheck.py URL [FIELD]", file=sys.stderr)
        return 2
    url, field = argv[0], (argv[1] if len(argv) == 2 else None)
    if is_healthy(url, field):
        return 0
    print(f"unhealthy: {url}" + (f" (needs {field}: true)" if field else ""), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
