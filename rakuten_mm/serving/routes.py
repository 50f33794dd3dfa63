"""Every route, thin: read the request, call one thing, shape the answer. Pages and static files at the end."""

import io
import tempfile
import zipfile
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST
from slowapi import Limiter
from starlette import status as http_status
from starlette.concurrency import run_in_threadpool

from rakuten_mm.categories import CATEGORY_NAMES, CODES
from rakuten_mm.serving.config import IMAGE_FORMATS, SMALL_BODY_LIMIT, Settings
from rakuten_mm.serving.deployment import Deployment, ProductInput, Served
from rakuten_mm.serving.inputs import batch_request_body, read_batch, read_upload
from rakuten_mm.serving.reports import drift_summary, evaluation_report
from rakuten_mm.serving.review import (
    AUTO, REVIEW, UnknownItemError, export_corrections, pending_items, queue_summary, record_decision,
)
from rakuten_mm.serving.rollout import ACTIONS, ReloadError, RolloutError, read_state, roll_out
from rakuten_mm.serving.schemas import (
    HAS_TEXT, MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS, MAX_IDENTIFIER_CHARS, BatchResponse, CandidateStatus,
    DriftSummary, Message, Prediction, Readiness, ReloadResult, ReviewDecision, ReviewDecisionRequest, ReviewItem,
    ReviewSummary, RolloutFile, ServedEvaluation, Status, Token, UserInfo,
)
from rakuten_mm.serving.security import (
    AdminUser, CurrentUser, create_access_token, metrics_caller_trusted, unauthorized, user_key,
)

UNAUTHORIZED = {401: {"description": "Missing, invalid or expired token"}}
TOKEN_ERRORS = {401: {"description": "Wrong user name or password"},
                429: {"description": "Too many attempts from this client"}}
PREDICT_ERRORS = {
    **UNAUTHORIZED,
    413: {"description": "Upload, image dimensions or batch over the limit"},
    415: {"description": "Not a JPEG, PNG or WebP image (or, for a batch, not JSON or CSV)"},
    422: {"description": "Missing or invalid field, or an image that cannot be decoded"},
    429: {"description": "Too many requests for this user"},
}
ADMIN_ERRORS = {**UNAUTHORIZED, 403: {"description": "The user is not an admin"},
                409: {"description": "The models could not be loaded; the previous ones are still served"}}
INCLUDE_PROBABILITIES = Query(description="also return the probability of every one of the 27 codes")
CHANGED_ONLY = ("keep the loaded models whose files did not change (what the rollout command asks: "
                "a promotion then loads nothing)")
RUNNING = "L'API fonctionne correctement"
WEB_DIR = Path(__file__).parent / "web"
STATIC_URL = "/static"
TEMPLATES = Jinja2Templates(directory=WEB_DIR / "templates")
# Swagger UI and ReDoc bundles, pinned in requirements-serve.txt: no CDN, and no copy in this repository.
DOCS_ASSETS_URL = f"{STATIC_URL}/docs-ui"
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")
# ReDoc's sidebar footer loads this logo whatever its options: the one request its bundle makes off the server.
REDOC_LOGO_URL = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


# --- the served models, as dependencies ---

def loaded_deployment(request: Request) -> Deployment:
    """The models the lifespan loaded, as they are."""
    deployment = request.app.state.deployment
    if deployment is None:  # only between process start and the end of the lifespan startup
        raise HTTPException(http_status.HTTP_503_SERVICE_UNAVAILABLE, "models are not loaded yet")
    return deployment


async def refreshed(deployment: Deployment) -> Deployment:
    """The deployment, reloaded first (in the thread pool: seconds) if the rollout file changed."""
    if deployment.needs_refresh():
        await run_in_threadpool(deployment.refresh)
    return deployment


async def current_deployment(request: Request) -> Deployment:
    """The models serving requests now: a stat of the rollout file at most every check interval, no thread hop."""
    return await refreshed(loaded_deployment(request))


Models = Annotated[Deployment, Depends(current_deployment)]
LoadedModels = Annotated[Deployment, Depends(loaded_deployment)]


def answered(request: Request, results: list[dict]) -> list[dict]:
    """The results, with the versions and variants that answered noted for the request log."""
    # A batch split between the two models logs both versions (and variants), comma-separated.
    request.state.model_version = ",".join(sorted({r["model_version"] for r in results}))
    request.state.variant = ",".join(sorted({r["variant"] for r in results}))
    return results


def reload_result(served: Served, notified: bool) -> ReloadResult:
    """The versions served after a reload, and whether the other workers were told."""
    return ReloadResult(current=served.current.version,
                        candidate=served.candidate.version if served.candidate else None,
                        candidate_share=served.candidate_share, other_workers_notified=notified)


# --- GET / and GET /status, GET /health/ready ---

status_router = APIRouter(tags=["status"])


@status_router.get("/", response_model=Message, summary="Welcome message and documentation links")
async def welcome() -> Message:
    """Say hello and point to the documentation."""
    return Message(
        message="Bienvenue sur l'API de classification des produits Rakuten France : "
                "POST /token pour un jeton, puis POST /predict.",
        docs="/docs", redoc="/redoc", openapi="/openapi.json",
    )


@status_router.get("/status", response_model=Status, summary="Health, loaded models and model versions")
async def status(request: Request) -> Status:
    """Whether the models are loaded, which version is current and, during an A/B rollout, the candidate."""
    deployment = request.app.state.deployment
    if deployment is None:
        return Status(status=RUNNING, models_loaded=False, model_version="unknown", model_outs={})
    served = (await refreshed(deployment)).served
    candidate = served.candidate
    return Status(
        status=RUNNING, models_loaded=True, model_version=served.current.version,
        model_outs=served.current.model_outs, review_threshold=served.current.threshold,
        candidate=CandidateStatus(model_version=candidate.version, model_outs=candidate.model_outs,
                                  share=served.candidate_share, review_threshold=candidate.threshold)
        if candidate else None,
        reload_error=deployment.reload_error,
    )


@status_router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}},
                   summary="Readiness: models loaded, rate-limit store reachable")
def readiness(request: Request, response: Response) -> Readiness:
    """503 until the models are loaded; `degraded` while the shared rate-limit store does not answer
    (limits are then counted per worker process, and the API keeps answering)."""
    limiter = request.app.state.limiter
    store = "disabled" if not limiter.enabled else "ok" if limiter.store_reachable() else "unreachable"
    loaded = request.app.state.deployment is not None
    if not loaded:
        response.status_code = http_status.HTTP_503_SERVICE_UNAVAILABLE
    verdict = "not_ready" if not loaded else "degraded" if store == "unreachable" else "ready"
    return Readiness(status=verdict, models_loaded=loaded, rate_limit_store=store)


# --- POST /token, GET /me ---

def auth_router(limiter: Limiter, settings: Settings) -> APIRouter:
    """/token, rate-limited per client address to slow password guessing, and /me."""
    router = APIRouter(tags=["auth"])

    @router.post("/token", response_model=Token, responses=TOKEN_ERRORS, max_body_size=SMALL_BODY_LIMIT,
                 summary="Get a bearer token")
    @limiter.limit(settings.token_rate_limit)
    def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
        """Exchange a user name and password (form fields) for a JWT bearer token."""
        # A sync route: bcrypt's deliberate slowness runs in the thread pool, not the event loop.
        user = request.app.state.users.authenticate(form.username, form.password)
        if user is None:
            raise unauthorized("incorrect user name or password")
        minutes = settings.access_token_expire_minutes
        request.state.user = user.username
        return Token(access_token=create_access_token(user.username, settings.signing_key, minutes),
                     expires_in=minutes * 60)

    @router.get("/me", response_model=UserInfo, responses=UNAUTHORIZED,
                summary="The signed-in user and its admin flag")
    async def me(request: Request, username: CurrentUser) -> UserInfo:
        """The user name of the token and whether it may call the admin endpoints."""
        user = request.app.state.users.get(username)
        if user is None:  # removed between the token check and now
            raise unauthorized("invalid token: unknown or disabled user")
        return UserInfo(username=username, admin=user.admin)

    return router


# --- POST /predict, POST /predict/batch ---

def add_predict_route(router: APIRouter, limiter: Limiter, settings: Settings) -> None:
    """POST /predict: one product as a multipart form, rate-limited per user."""

    @router.post("/predict", response_model=Prediction, max_body_size=settings.predict_body_limit,
                 summary="Predict the product type of one product")
    @limiter.limit(settings.predict_rate_limit, key_func=user_key)
    async def predict(
        request: Request,
        user: CurrentUser,
        models: Models,
        designation: Annotated[str, Form(max_length=MAX_DESIGNATION_CHARS, pattern=HAS_TEXT,
                                         description="product title")],
        description: Annotated[str | None, Form(max_length=MAX_DESCRIPTION_CHARS)] = None,
        productid: Annotated[int | None, Form()] = None,
        imageid: Annotated[int | None, Form()] = None,
        product_identifier: Annotated[str | None, Form(max_length=MAX_IDENTIFIER_CHARS)] = None,
        image: Annotated[UploadFile | None, File(description="JPEG, PNG or WebP image (optional)")] = None,
        include_probabilities: Annotated[bool, INCLUDE_PROBABILITIES] = False,
    ) -> dict:
        """The predicted prdtypecode, its category and probability, the top 5 and the modalities used.

        Without an image the prediction comes from the text alone, and `note` says so. During an
        A/B rollout, `model_version` and `variant` say which model answered (the same one for a
        given productid, product_identifier or, without either, title).
        """
        product = ProductInput(designation, description, await read_upload(image, settings.max_upload_bytes),
                               productid, imageid, product_identifier)
        # The request's one hop to the thread pool: decoding and inference, off the event loop.
        results = await run_in_threadpool(models.predict, [product], "predict", include_probabilities)
        return answered(request, results)[0]


def add_batch_route(router: APIRouter, limiter: Limiter, settings: Settings) -> None:
    """POST /predict/batch: a JSON list of products or a CSV file, rate-limited per user."""

    @router.post("/predict/batch", response_model=BatchResponse, max_body_size=settings.max_batch_bytes,
                 openapi_extra=batch_request_body(settings.max_batch_size),
                 summary="Predict a batch: a JSON list of products or a CSV file")
    @limiter.limit(settings.batch_rate_limit, key_func=user_key)
    async def predict_batch(
        request: Request,
        user: CurrentUser,
        models: Models,
        include_probabilities: Annotated[bool, INCLUDE_PROBABILITIES] = False,
    ) -> dict:
        """One prediction per product, in order.

        Body: a JSON list of products (text fields and an optional base64 image), or a CSV in the
        X_test_update.csv layout (unnamed index, designation, description, productid, imageid) sent
        as text/csv or as the `file` part of a multipart form. CSV rows carry no image: they are
        predicted from their text, and their index comes back as `product_identifier`.
        Each prediction names the `model_version` and `variant` that answered it, and its `decision`;
        `decisions` counts the products filed automatically and those sent to review.
        """
        products = await read_batch(request, settings)
        current_version = models.served.current.version
        results = await run_in_threadpool(models.predict, products, "batch", include_probabilities)
        predictions = [{**result, "row": row} for row, result in enumerate(answered(request, results))]
        decisions = {kind: sum(result["decision"] == kind for result in results) for kind in (AUTO, REVIEW)}
        return {"count": len(predictions), "decisions": decisions, "model_version": current_version,
                "predictions": predictions}


def predict_router(limiter: Limiter, settings: Settings) -> APIRouter:
    """The prediction routes, rate-limited per user, with this app's body size limits."""
    router = APIRouter(tags=["prediction"], responses=PREDICT_ERRORS)
    add_predict_route(router, limiter, settings)
    add_batch_route(router, limiter, settings)
    return router


# --- /admin/reload, /admin/rollout ---

admin_router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ERRORS)


@admin_router.post("/reload", response_model=ReloadResult, max_body_size=SMALL_BODY_LIMIT,
                   summary="Reload the models (current and candidate) from disk")
def reload_models(
    request: Request,
    admin: AdminUser,
    models: LoadedModels,
    changed_only: Annotated[bool, Query(description=CHANGED_ONLY)] = False,
) -> ReloadResult:
    """Re-read the rollout file and load the models it names, without a restart.

    This worker reloads at once; it then touches the rollout file, so that the other uvicorn
    workers reload at their next request (within RAKUTEN_API_ROLLOUT_CHECK_SECONDS).
    """
    # A sync route: loading models takes seconds and runs in the thread pool.
    try:
        return reload_result(*models.reload(reuse=changed_only))
    except ReloadError as error:
        raise HTTPException(http_status.HTTP_409_CONFLICT,
                            f"reload failed, previous models still served: {error}") from error


@admin_router.get("/rollout", response_model=RolloutFile, summary="The rollout file: current, candidate, previous")
def rollout_status(admin: AdminUser, models: Models) -> RolloutFile:
    """What promote and rollback would act on, and the versions this worker serves."""
    try:
        state = read_state(models.settings.rollout_file, models.settings.models_dir)
    except RolloutError as error:
        raise HTTPException(http_status.HTTP_409_CONFLICT, str(error)) from error
    served = models.served
    return RolloutFile(current=state.current, candidate=state.candidate, candidate_share=state.candidate_share,
                       previous=state.previous, updated_at=state.updated_at, served_version=served.current.version,
                       served_candidate_version=served.candidate.version if served.candidate else None)


@admin_router.post("/rollout/{action}", response_model=ReloadResult, max_body_size=SMALL_BODY_LIMIT,
                   summary="Promote the candidate, or roll back to the previous models")
def rollout_action(admin: AdminUser, models: LoadedModels, action: Literal["promote", "rollback"]) -> ReloadResult:
    """promote: the candidate serves every product (the current models are kept for a rollback);
    rollback: the previous models serve again and any candidate stops. 409 when there is nothing to
    promote or roll back to, or when the models cannot be loaded (the rollout file is then restored).
    """
    # A sync route: a rollback loads models (seconds) in the thread pool; reuse: a promotion loads nothing.
    settings = models.settings
    try:
        return reload_result(*roll_out(settings.rollout_file, settings.models_dir, ACTIONS[action],
                                       lambda _: models.reload(reuse=True)))
    except (RolloutError, ReloadError) as error:
        raise HTTPException(http_status.HTTP_409_CONFLICT, f"{action} refused: {error}") from error


# --- /review: the queue of products answered `review`, and POST /admin/review/export ---

REVIEW_ERRORS = {**UNAUTHORIZED, 404: {"description": "No such queue item, or the review queue is off"}}
review_router = APIRouter(prefix="/review", tags=["review"], responses=REVIEW_ERRORS)


def review_database(request: Request) -> Path:
    """The queue's database; 404 when RAKUTEN_API_REVIEW_DATABASE is blank (no queue)."""
    path = request.app.state.settings.review_database
    if path is None:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, "the review queue is off (RAKUTEN_API_REVIEW_DATABASE)")
    return path


ReviewDatabase = Annotated[Path, Depends(review_database)]
# Queue ids and codes are SQLite INTEGERs: a larger number is refused with 422, not an overflow and a 500.
SQLITE_INTEGER_MAX = 2**63 - 1


@review_router.get("/items", response_model=list[ReviewItem], summary="Products waiting for review")
def review_items(
    user: CurrentUser,
    database: ReviewDatabase,
    prdtypecode: Annotated[int | None, Query(ge=0, le=SQLITE_INTEGER_MAX,
                                             description="only products predicted with this code")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    after_probability: Annotated[float | None, Query(description="next page: the last item's probability")] = None,
    after_id: Annotated[int | None, Query(ge=0, le=SQLITE_INTEGER_MAX,
                                          description="next page: the last item's id")] = None,
) -> list[dict]:
    """Least confident first (then oldest), with the photo's small copy and the top-5 codes' French names."""
    after = (after_probability, after_id) if after_probability is not None and after_id is not None else None
    return pending_items(database, prdtypecode, limit, after)


@review_router.get("/summary", response_model=ReviewSummary, summary="How many products wait, per predicted code")
def review_summary(user: CurrentUser, database: ReviewDatabase) -> dict:
    """Products waiting for review, in all and per predicted code, and the decisions recorded so far."""
    return queue_summary(database)


@review_router.post("/items/{item_id}/decision", response_model=ReviewDecision, max_body_size=SMALL_BODY_LIMIT,
                    responses={422: {"description": "Not one of the 27 codes"}}, summary="Label or skip a product")
def review_decision(item_id: Annotated[int, PathParameter(ge=0, le=SQLITE_INTEGER_MAX)], body: ReviewDecisionRequest,
                    user: CurrentUser, database: ReviewDatabase) -> dict:
    """Record who chose which code (the predicted one confirms it; null skips the product), append-only.

    A product decided again keeps every decision; the latest one that is not a skip is its label.
    """
    try:
        return record_decision(database, item_id, user, body.prdtypecode)
    except UnknownItemError as error:
        raise HTTPException(http_status.HTTP_404_NOT_FOUND, str(error)) from error
    except ValueError as error:
        raise HTTPException(http_status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


def zipped_folder(folder: Path) -> bytes:
    """The files of a folder as a zip archive, in memory (an export is small JPEG copies and two CSVs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


@admin_router.post("/review/export", response_class=Response, max_body_size=SMALL_BODY_LIMIT,
                   responses={200: {"content": {"application/zip": {}}}},
                   summary="The reviewers' labels as a challenge-layout folder (zip)")
def review_export(admin: AdminUser, database: ReviewDatabase) -> Response:
    """What `python -m rakuten_mm.serving.review export` writes, as a zip: X_train_update.csv,
    Y_train_CVw08PX.csv and images_train.zip, one row per decided product with its latest label."""
    with tempfile.TemporaryDirectory() as folder:
        written = export_corrections(database, Path(folder))
        content = zipped_folder(Path(folder))
    name = f"corrections-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.zip"
    return Response(content, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Exported-Rows": str(written["labelled"]),
                             "X-Exported-Photos": str(written["images_train"])})


# --- /reports/evaluation, /reports/drift, /metrics ---

reports_router = APIRouter(prefix="/reports", tags=["status"], responses=UNAUTHORIZED)


@reports_router.get("/evaluation", response_model=list[ServedEvaluation],
                    summary="Evaluate-stage scores of the served models")
def evaluation(user: CurrentUser, models: Models) -> list[dict]:
    """Weighted F1 per model, per-class F1 and the confusion matrix the evaluate stage wrote beside each
    served models folder (current, then the candidate of an A/B rollout)."""
    return evaluation_report(models.served, models.settings)


@reports_router.get("/drift", response_model=DriftSummary, summary="Latest drift verdict per feature")
def drift(request: Request, user: CurrentUser) -> dict:
    """The verdict, score and threshold of each feature in the monitor command's latest report."""
    return drift_summary(request.app.state.settings.drift_report)


metrics_router = APIRouter(tags=["monitoring"])


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Metrics in the Prometheus text format: the operational series for anyone, all of them (models,
    predictions, drift) with `Authorization: Bearer <RAKUTEN_API_METRICS_TOKEN>`."""
    trusted = metrics_caller_trusted(request, request.app.state.settings)
    return Response(request.app.state.exposition.text(trusted), media_type=CONTENT_TYPE_LATEST)


# --- pages: the console, /docs, /redoc, static files ---

pages_router = APIRouter(include_in_schema=False)


@pages_router.get("/console", response_class=HTMLResponse)
def console(request: Request) -> HTMLResponse:
    """The single page of the console: sign-in, one product, a file, the review queue, the service status."""
    settings = request.app.state.settings
    # The limits the console checks before sending, so that it can say what is wrong in French.
    limits = {"max_upload_bytes": settings.max_upload_bytes,
              "batch_rows": min(settings.console_batch_rows, settings.max_batch_size),
              "image_types": ",".join(f"image/{name.lower()}" for name in IMAGE_FORMATS)}
    # The review page's list of the 27 codes with their French names (rendered by Jinja, escaped).
    categories = [(code, CATEGORY_NAMES[code]) for code in CODES]
    return TEMPLATES.TemplateResponse(request, "console.html",
                                      {"static": STATIC_URL, "limits": limits, "categories": categories})


def docs_page(request: Request, template: str) -> HTMLResponse:
    """One of the two documentation pages, pointed at this app's OpenAPI document."""
    app = request.app
    context = {"title": app.title, "openapi_url": app.openapi_url, "static": STATIC_URL, "docs_assets": DOCS_ASSETS_URL}
    return TEMPLATES.TemplateResponse(request, template, context)


@pages_router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the endpoints (Authorize with a user name and password first)."""
    return docs_page(request, "swagger.html")


@pages_router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the reference documentation of every endpoint."""
    return docs_page(request, "redoc.html")


@cache
def redoc_bundle() -> bytes:
    """The packaged ReDoc bundle with its footer logo replaced by an empty image (the image then hides itself)."""
    package, folder = DOCS_ASSETS_PACKAGE
    return (files(package) / folder / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO_URL, b'"data:,"')


# A route, so that it is matched before the static mount that serves the package's other files.
@pages_router.get(f"{DOCS_ASSETS_URL}/redoc.standalone.js")
def redoc_script() -> Response:
    """ReDoc's script, kept on this server (see redoc_bundle)."""
    return Response(redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})


def add_routes(app: FastAPI, limiter: Limiter, settings: Settings) -> None:
    """Every route of the API, then the console's and the documentation's static files under /static."""
    for router in (status_router, auth_router(limiter, settings), predict_router(limiter, settings), admin_router,
                   review_router, reports_router, pages_router, metrics_router):
        app.include_router(router)
    # The more specific mount first: Starlette tries mounts in order.
    app.mount(DOCS_ASSETS_URL, StaticFiles(packages=[DOCS_ASSETS_PACKAGE]), name="docs-assets")
    app.mount(STATIC_URL, StaticFiles(directory=WEB_DIR / "static"), name="static")
