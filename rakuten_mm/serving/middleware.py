"""One JSON log line per request, with a request id, to stdout and a rotating file under logs/."""

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rakuten_mm.serving.config import Settings

LOGGER_NAME = "rakuten_mm.serving"
access_log = logging.getLogger(f"{LOGGER_NAME}.access")
REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied id is echoed into logs and headers: accept only a short, plain token.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LOGGED_PATH = 512


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message and the record's extra fields."""

    # Only these extra attributes are copied: nothing else a caller attaches can leak into the log.
    FIELDS = ("request_id", "method", "path", "status", "duration_ms", "client", "user", "model_version", "variant")

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single JSON line."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which uvicorn worker
        }
        entry.update({name: getattr(record, name) for name in self.FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Send the API's logs, as JSON, to stdout and to a rotating file (replacing earlier handlers)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, "_rakuten_api", False)]:
        logger.removeHandler(handler)
        handler.close()
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    handlers = [
        logging.StreamHandler(sys.stdout),
        RotatingFileHandler(settings.log_dir / "api.log", maxBytes=settings.log_file_max_bytes,
                            backupCount=settings.log_file_backups, encoding="utf-8"),
    ]
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        handler._rakuten_api = True
        logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = False  # uvicorn's root handlers would print every line a second time


def request_id_from(headers: Headers) -> str:
    """The client's X-Request-ID when it is a plain token, else a new random id."""
    given = headers.get(REQUEST_ID_HEADER)
    if given and VALID_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Pure ASGI middleware: tag each request with an id, return it, and log the request once done."""

    # Logged: id, method, path (no query string), status, duration, client address, user name and,
    # for predictions, the model version(s) and variant(s) that answered.
    # Never logged: headers (tokens), bodies (passwords, uploaded files), query strings.

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, adding X-Request-ID to the response and logging it afterwards."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, request_id, status, time.perf_counter() - start)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, seconds: float) -> None:
        """Write the request's log line."""
        client = scope.get("client")
        state = scope["state"]
        answered_by = {name: state[name] for name in ("model_version", "variant") if name in state}
        access_log.info("request", extra={
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"][:MAX_LOGGED_PATH],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "user": state.get("user"),
            **answered_by,
        })


class DeclaredBodyLimitMiddleware:
    """Answer 413 (JSON) at once when a request's Content-Length is over its route's limit."""

    # The routes' own max_body_size still counts the bytes of bodies sent without a length
    # (chunked); this only turns the common, declared case into a JSON answer that never reads
    # the body, where Starlette would answer in plain text.

    def __init__(self, app: ASGIApp, limits: dict[str, int], default_limit: int):
        self.app = app
        self.limits = limits
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized declared body, pass everything else through."""
        if scope["type"] == "http":
            limit = self.limits.get(scope["path"], self.default_limit)
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                detail = f"request body is {declared} bytes, over the limit of {limit} bytes for {scope['path']}"
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)
