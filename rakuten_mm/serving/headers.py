"""Security headers on every response: a Content-Security-Policy, no MIME sniffing, no framing, no referrer.

The console's policy allows only the app's own scripts, styles and API (no inline script, no eval);
product text is inserted as text by its scripts, so even a policy bypass would find nothing to run.
Swagger UI and ReDoc (from the fastapi-offline package, served locally) set styles inline and ReDoc
runs a blob: worker, so their two pages get a policy that allows inline styles — never inline scripts.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                 "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self' data:; worker-src blob:; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def policy_for(path: str) -> str:
    """The CSP of a path: the documentation pages' one, else the strict one."""
    return DOCS_POLICY if path in DOCS_PATHS else STRICT_POLICY


class SecurityHeadersMiddleware:
    """Add the CSP and the common security headers to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = policy_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            """Set the headers on http.response.start, leaving any the route set itself."""
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {"Content-Security-Policy": policy, **COMMON_HEADERS}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
