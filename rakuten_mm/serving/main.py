"""The FastAPI application: `create_app(settings)`, and `app` for uvicorn.

    uvicorn rakuten_mm.serving.main:app --host 127.0.0.1 --port 8000 --workers 2

`app` is built on first access from the environment (.env included), so importing this
module, e.g. for create_app in tests, needs no secret.
"""

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.serving.config import SMALL_BODY_LIMIT, Settings
from rakuten_mm.serving.deployment import Deployment
from rakuten_mm.serving.headers import SecurityHeadersMiddleware
from rakuten_mm.serving.middleware import (
    LOGGER_NAME, DeclaredBodyLimitMiddleware, RequestLogMiddleware, configure_logging,
)
from rakuten_mm.serving.monitoring import ModelMetrics, instrument_http
from rakuten_mm.serving.prediction_log import PredictionLog
from rakuten_mm.serving.routes import account, admin, auth, console, docs, home, predict, reports
from rakuten_mm.serving.service import configure_tensorflow_threads
from rakuten_mm.serving.users import UserStore
from rakuten_mm.serving.web import mount_static

log = logging.getLogger(LOGGER_NAME)
DESCRIPTION = (
    "Predicts the Rakuten France product type code (prdtypecode, 27 classes) of a product from its "
    "title, optional description and optional image, with the models `dvc repro` trained. "
    "Get a token with POST /token (OAuth2 password flow), then call POST /predict."
)


def rate_limit_exceeded(request: Request, exc: RateLimitExceeded) -> JSONResponse:
    """429 with a plain message and Retry-After, in seconds until the window resets."""
    retry_after = 60
    current = getattr(request.state, "view_rate_limit", None)
    if current is not None:
        reset_at, _ = request.app.state.limiter.limiter.get_window_stats(current[0], *current[1])
        retry_after = max(1, math.ceil(reset_at - time.time()))
    return JSONResponse(
        {"detail": f"Too many requests: the limit is {exc.detail}. Retry in {retry_after} s."},
        status_code=429, headers={"Retry-After": str(retry_after)},
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's JSON error, with the body size limit spelled out when that is what was hit."""
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    if exc.status_code == 413 and exc.detail == "Content Too Large" and limit is not None:
        exc = StarletteHTTPException(413, f"request body is over the limit of {limit} bytes for {request.url.path}")
    return await http_exception_handler(request, exc)


def body_limits(settings: Settings) -> dict[str, int]:
    """Largest request body per route; the others get SMALL_BODY_LIMIT."""
    return {"/predict": settings.predict_body_limit, "/predict/batch": settings.max_batch_bytes}


def build_limiter(settings: Settings) -> Limiter:
    """The app's rate limiter; each route names its own limit and key."""
    return Limiter(key_func=get_remote_address, storage_uri=settings.rate_limit_storage_uri,
                   enabled=settings.rate_limit_enabled, headers_enabled=False)


def build_lifespan(settings: Settings, metrics: ModelMetrics, classifier_factory: Callable) -> Callable:
    """Load the models once per process, before the first request, and drop them at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_tensorflow_threads(settings.tf_threads)
        app.state.deployment = Deployment(settings, metrics, PredictionLog(settings.prediction_log), classifier_factory)
        yield
        app.state.deployment = None

    return lifespan


def create_app(settings: Settings | None = None,
               classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier) -> FastAPI:
    """Build the API for these settings (default: from the environment); models load at startup."""
    settings = settings or Settings()
    settings.signing_key  # raises MissingSecretError: no app that cannot sign tokens safely
    configure_logging(settings)
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    limiter = build_limiter(settings)
    # /docs and /redoc are our own routes: same pages, assets served locally (docs.py).
    app = FastAPI(title="Rakuten France product type API", version="1.0.0", description=DESCRIPTION,
                  lifespan=build_lifespan(settings, metrics, classifier_factory), docs_url=None, redoc_url=None)
    app.state.settings, app.state.metrics, app.state.limiter = settings, metrics, limiter
    app.state.users = UserStore(settings.users_file, settings.users, settings.bcrypt_rounds)
    app.state.deployment = None
    app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for router in (home.router, auth.build_router(limiter, settings), predict.build_router(limiter, settings),
                   admin.router, account.router, reports.router, console.router, docs.router):
        app.include_router(router)
    mount_static(app)
    instrument_http(app, registry, settings.drift_report)
    app.add_middleware(DeclaredBodyLimitMiddleware, limits=body_limits(settings), default_limit=SMALL_BODY_LIMIT)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxies:
        # The client address (rate limits, logs) from X-Forwarded-For, only when a listed proxy sent it;
        # uvicorn itself runs with --no-proxy-headers, so this setting alone decides.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(RequestLogMiddleware)  # added last: outermost, so it times and logs everything
    return app


def __getattr__(name: str) -> FastAPI:
    """Build the module-level `app` from the environment on first access (PEP 562)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = create_app()
    globals()["app"] = app
    return app
