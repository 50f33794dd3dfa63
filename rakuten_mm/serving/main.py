"""The FastAPI application: `create_app(settings)`, and `app` for uvicorn.

    uvicorn rakuten_mm.serving.main:app --host 127.0.0.1 --port 8000 --workers 2

`app` is built on first access from the environment (.env included), so importing this
module, e.g. for create_app in tests, needs no secret. A setting that cannot work (no secret, a
log folder that cannot be created) stops uvicorn with one line on stderr, not a traceback.
"""

import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from slowapi.errors import RateLimitExceeded
from starlette import status
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from uvicorn.config import STARTUP_FAILURE
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rakuten_mm.features.images import ImageTooLargeError, UnsupportedImageFormatError
from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.serving.config import SMALL_BODY_LIMIT, MissingSecretError, Settings
from rakuten_mm.serving.deployment import Deployment, ProductImageError, configure_tensorflow_threads
from rakuten_mm.serving.metrics import ApiMetrics, Exposition, instrument_http
from rakuten_mm.serving.middleware import DeclaredBodyLimitMiddleware, RequestLogMiddleware, configure_logging
from rakuten_mm.serving.prediction_log import PredictionLog, PredictionLogError
from rakuten_mm.serving.review import ReviewQueue
from rakuten_mm.serving.routes import add_routes
from rakuten_mm.serving.security import (
    FallbackLimiter, SecurityHeadersMiddleware, SignedInBodyMiddleware, rate_limit_exceeded,
)
from rakuten_mm.serving.users import UserStore

DESCRIPTION = (
    "Predicts the Rakuten France product type code (prdtypecode, 27 classes) of a product from its "
    "title, optional description and optional image, with the models `dvc repro` trained. "
    "Get a token with POST /token (OAuth2 password flow), then call POST /predict."
)
# The routes that take an upload: an anonymous request is refused before its body is read.
UPLOAD_PATHS = ("/predict", "/predict/batch")
# Errors in the settings or the files they name, reported in one line at start-up.
STARTUP_ERRORS = (MissingSecretError, PredictionLogError, ValidationError, OSError, ValueError, sqlite3.Error)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's JSON error, with the body size limit spelled out when that is what was hit."""
    limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    if exc.status_code == 413 and exc.detail == "Content Too Large" and limit is not None:
        exc = StarletteHTTPException(413, f"request body is over the limit of {limit} bytes for {request.url.path}")
    return await http_exception_handler(request, exc)


async def image_refused(request: Request, exc: ProductImageError) -> JSONResponse:
    """415 for a format the API does not take, 413 for too many pixels, 422 for a corrupt or too elongated image."""
    cause = exc.error
    if isinstance(cause, UnsupportedImageFormatError):
        code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    elif isinstance(cause, ImageTooLargeError):
        code = status.HTTP_413_CONTENT_TOO_LARGE
    else:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT  # corrupt, or too elongated
    batch = request.url.path == "/predict/batch"
    return JSONResponse({"detail": f"row {exc.row}: {cause}" if batch else str(cause)}, status_code=code)


def body_limits(settings: Settings) -> dict[str, int]:
    """Largest request body per route; the others get SMALL_BODY_LIMIT."""
    return {"/predict": settings.predict_body_limit, "/predict/batch": settings.max_batch_bytes}


def build_lifespan(settings: Settings, metrics: ApiMetrics, prediction_log: PredictionLog, review_queue: ReviewQueue,
                   classifier_factory: Callable) -> Callable:
    """Load the models once per process, before the first request; write out the prediction log and the
    review queue at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_tensorflow_threads(settings.tf_threads)
        app.state.deployment = Deployment(settings, metrics, prediction_log, classifier_factory, review_queue)
        prediction_log.start()
        review_queue.start()
        yield
        app.state.deployment = None
        prediction_log.close()
        review_queue.close()

    return lifespan


def add_middleware(app: FastAPI, settings: Settings, users: UserStore) -> None:
    """The middleware stack around the instrumented app, innermost first: size refusals, headers, client, log."""
    app.add_middleware(DeclaredBodyLimitMiddleware, limits=body_limits(settings), default_limit=SMALL_BODY_LIMIT)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxies:
        # The client address (rate limits, logs) from X-Forwarded-For, only when a listed proxy sent it;
        # uvicorn itself runs with --no-proxy-headers, so this setting alone decides.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(RequestLogMiddleware)  # added last: outermost, so it times and logs everything


def create_app(settings: Settings | None = None,
               classifier_factory: Callable[[Path], ProductClassifier] = ProductClassifier) -> FastAPI:
    """Build the API for these settings (default: from the environment); models load at startup."""
    settings = settings or Settings()
    settings.signing_key  # raises MissingSecretError: no app that cannot sign tokens safely
    configure_logging(settings)
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    limiter = FallbackLimiter(settings, on_store_change=lambda down: metrics.rate_limit_store_degraded.set(down))
    prediction_log = PredictionLog(settings.prediction_log)  # its folder is created now: a bad path stops here
    review_queue = ReviewQueue.from_settings(settings)  # its database too
    users = UserStore(settings.users_file, settings.users, settings.bcrypt_rounds)
    # /docs and /redoc are our own routes: same pages, assets served locally (routes.py).
    app = FastAPI(title="Rakuten France product type API", version="1.0.0", description=DESCRIPTION,
                  lifespan=build_lifespan(settings, metrics, prediction_log, review_queue, classifier_factory),
                  docs_url=None, redoc_url=None)
    app.state.settings, app.state.metrics, app.state.limiter, app.state.users = settings, metrics, limiter, users
    app.state.review_queue = review_queue
    app.state.exposition = Exposition(registry, settings.drift_report)
    app.state.deployment = None
    app.add_exception_handler(RateLimitExceeded, rate_limit_exceeded)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ProductImageError, image_refused)
    add_routes(app, limiter, settings)
    # Inside the instrumentator, so that its refusals are counted per route like the routes' own 401s.
    app.add_middleware(SignedInBodyMiddleware, paths=UPLOAD_PATHS, settings=settings, users=users)
    instrument_http(app, registry)
    add_middleware(app, settings, users)
    return app


def __getattr__(name: str) -> FastAPI:
    """Build the module-level `app` from the environment on first access (PEP 562)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        app = create_app()
    except STARTUP_ERRORS as error:
        # uvicorn's exit code for a broken app: its supervisor stops instead of restarting workers.
        print(f"error: the API cannot start: {error}", file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None
    globals()["app"] = app
    return app
