"""Who may call what, and how often: passwords, tokens, the signed-in user, rate limits, security headers.

Rate limits: /token counts per client address (to slow password guessing), /predict and
/predict/batch per signed-in user. Their counters live in RAKUTEN_API_RATE_LIMIT_STORAGE_URI; when
that store cannot be reached, each worker counts in its own memory until it answers again (logged,
and shown by the rakuten_rate_limit_store_degraded gauge and GET /health/ready), never a 500.
"""

import functools
import hmac
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import bcrypt
import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rakuten_mm.serving.config import Settings

log = logging.getLogger(__name__)
# The one signing algorithm the API issues and accepts: a token that names another one
# (including "none") is refused before its signature is even looked at.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than truncated.
MAX_PASSWORD_BYTES = 72
# Tokens whose signature was checked, per process: a client reuses its token for many requests.
CHECKED_TOKENS = 4096
# A rate-limit store that does not answer within this time counts as down (the request goes on).
STORE_TIMEOUT_SECONDS = 0.5
NOT_AUTHENTICATED = "Not authenticated"

STRICT_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                 "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# Swagger UI and ReDoc (fastapi-offline, served locally) set styles inline and ReDoc runs a blob:
# worker: their two pages allow inline styles, never inline scripts.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self' data:; worker-src blob:; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


class InvalidTokenError(ValueError):
    """The token is malformed, expired, tampered with or signed with another algorithm."""


# --- passwords and tokens ---

def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of the password (cost 2**rounds), as text for the users file."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password is {len(encoded)} bytes long; bcrypt reads at most {MAX_PASSWORD_BYTES}")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True when the password matches the bcrypt hash; False for a malformed hash or password."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode("ascii"))
    # A hand-edited users file can hold anything; a bad hash is a failed login, not a 500.
    except (ValueError, UnicodeEncodeError):
        return False


def create_access_token(subject: str, secret: str, expires_minutes: float, now: datetime | None = None) -> str:
    """A signed JWT naming the user (sub), with issue (iat) and expiry (exp) times."""
    issued = now or datetime.now(UTC)
    claims = {"sub": subject, "iat": issued, "exp": issued + timedelta(minutes=expires_minutes)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


@functools.lru_cache(maxsize=CHECKED_TOKENS)
def verified_claims(token: str, secret: str) -> tuple[str, float]:
    """(subject, expiry) of a token whose signature and claims are valid now; checked once per token."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS})
    except jwt.PyJWTError as error:
        raise InvalidTokenError(str(error)) from error
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidTokenError("token subject must be a non-empty string")
    return subject, float(claims["exp"])


def decode_access_token(token: str, secret: str) -> str:
    """The user name of a valid, unexpired token; InvalidTokenError for anything else."""
    subject, expires = verified_claims(token, secret)
    # The cache keeps a token past its expiry: the time is checked on every use, as PyJWT does.
    if expires <= time.time():
        raise InvalidTokenError("Signature has expired")
    return subject


# --- the signed-in user ---

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client to come back with a bearer token."""
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def token_user(token: str | None, settings: Settings, users) -> str:
    """The enabled user a bearer token names; the 401 a client gets otherwise."""
    if not token:
        raise unauthorized(NOT_AUTHENTICATED)
    try:
        username = decode_access_token(token, settings.signing_key)
    except InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from error
    if users.get(username) is None:
        # A removed or disabled user's tokens stop working at once, not when they expire.
        raise unauthorized("invalid token: unknown or disabled user")
    return username


async def get_current_user(request: Request, token: Annotated[str, Depends(oauth2_scheme)]) -> str:
    """The name of the user a valid, unexpired token was issued to; 401 otherwise."""
    # async: a few microseconds of work, not worth a hop to the thread pool.
    username = token_user(token, request.app.state.settings, request.app.state.users)
    request.state.user = username  # read by the rate limiter and the request log
    return username


async def get_admin_user(request: Request, username: Annotated[str, Depends(get_current_user)]) -> str:
    """The authenticated user when it has the admin flag; 403 otherwise."""
    user = request.app.state.users.get(username)
    if user is None or not user.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint is for admin users")
    return username


CurrentUser = Annotated[str, Depends(get_current_user)]
AdminUser = Annotated[str, Depends(get_admin_user)]


class SignedInBodyMiddleware:
    """Answer 401 to an upload route's request without a valid token before a byte of its body is read."""

    # FastAPI parses a route's form before it checks its dependencies: without this, anyone could
    # make the API parse up to the body limit. The route's own check still runs (same answers).

    def __init__(self, app: ASGIApp, paths: tuple[str, ...], settings: Settings, users):
        self.app, self.paths, self.settings, self.users = app, paths, settings, users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an anonymous upload at once; pass everything else through."""
        if scope["type"] == "http" and scope["path"] in self.paths:
            scheme, token = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
            try:
                token_user(token if scheme.lower() == "bearer" else None, self.settings, self.users)
            except HTTPException as error:
                response = JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def metrics_caller_trusted(request: Request, settings: Settings) -> bool:
    """Whether /metrics may show the model and drift series: the caller sent the metrics token."""
    expected = settings.metrics_token
    scheme, given = get_authorization_scheme_param(request.headers.get("authorization"))
    if expected is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


# --- rate limits ---

def user_key(request: Request) -> str:
    """Rate-limit key of the prediction routes: the authenticated user (get_current_user runs first)."""
    return f"user:{request.state.user}"


class FallbackLimiter(Limiter):
    """slowapi's Limiter, counting in memory while its store is down, and saying when that starts and ends."""

    def __init__(self, settings: Settings, on_store_change: Callable[[bool], None]):
        # Timeouts bound how long a dead Redis can hold a request (and the event loop) before the fallback.
        options = ({"socket_connect_timeout": STORE_TIMEOUT_SECONDS, "socket_timeout": STORE_TIMEOUT_SECONDS}
                   if settings.rate_limit_storage_uri.startswith(("redis", "rediss")) else {})
        super().__init__(key_func=get_remote_address, storage_uri=settings.rate_limit_storage_uri,
                         storage_options=options, enabled=settings.rate_limit_enabled, headers_enabled=False,
                         in_memory_fallback_enabled=True)
        self.on_store_change = on_store_change
        self.store_down = False

    def _check_request_limit(self, *args, **kwargs) -> None:
        """slowapi's check, then report a change of store (down: counted in memory; back: shared again)."""
        try:
            super()._check_request_limit(*args, **kwargs)
        finally:
            if self._storage_dead != self.store_down:
                self.store_down = self._storage_dead
                log.warning("rate-limit store %s: %s", "unreachable" if self.store_down else "reachable again",
                            "limits are counted per worker process" if self.store_down else "limits are shared")
                self.on_store_change(self.store_down)

    def store_reachable(self) -> bool:
        """Whether the shared store answers now (a ping, bounded by STORE_TIMEOUT_SECONDS)."""
        try:
            return bool(self._storage.check())
        except Exception:  # any client error means the same: not reachable
            return False


def retry_after_seconds(request: Request) -> int:
    """Seconds until the exceeded limit's window resets (60 when the store cannot say)."""
    current = getattr(request.state, "view_rate_limit", None)
    if current is None:
        return 60
    try:
        reset_at, _ = request.app.state.limiter.limiter.get_window_stats(current[0], *current[1])
    except Exception:  # the store went down between the check and this answer
        return 60
    return max(1, math.ceil(reset_at - time.time()))


def rate_limit_exceeded(request: Request, exc: RateLimitExceeded) -> JSONResponse:
    """429 with a plain message and Retry-After, in seconds until the window resets."""
    retry_after = retry_after_seconds(request)
    return JSONResponse(
        {"detail": f"Too many requests: the limit is {exc.detail}. Retry in {retry_after} s."},
        status_code=429, headers={"Retry-After": str(retry_after)},
    )


# --- response headers ---

def policy_for(path: str) -> str:
    """The CSP of a path: the documentation pages' one, else the strict one."""
    return DOCS_POLICY if path in DOCS_PATHS else STRICT_POLICY


class SecurityHeadersMiddleware:
    """Add the CSP and the common security headers to every HTTP response that does not set its own."""

    # The console's scripts insert product text as text, so even a policy bypass finds nothing to run.

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers_to_add = {"Content-Security-Policy": policy_for(scope["path"]), **COMMON_HEADERS}

        async def send_with_headers(message: Message) -> None:
            """Set the headers on http.response.start, leaving any the route set itself."""
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in headers_to_add.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
