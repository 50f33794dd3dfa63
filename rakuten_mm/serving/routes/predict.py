"""POST /predict (one product, multipart form) and POST /predict/batch (JSON list or CSV)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from slowapi import Limiter
from starlette.concurrency import run_in_threadpool

from rakuten_mm.features.images import ImageTooLargeError, UnsupportedImageFormatError
from rakuten_mm.serving.batch import read_csv_batch, read_json_batch, read_upload, upload_chunks
from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.deployment import Deployment
from rakuten_mm.serving.deps import CurrentUser, Models
from rakuten_mm.serving.schemas import (
    HAS_TEXT, MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS, MAX_IDENTIFIER_CHARS, BatchProduct, BatchResponse,
    Prediction,
)
from rakuten_mm.serving.monitoring import ModelMetrics
from rakuten_mm.serving.service import ProductImageError, ProductInput, rejection_reason

PREDICT_ERRORS = {
    401: {"description": "Missing, invalid or expired token"},
    413: {"description": "Upload, image dimensions or batch over the limit"},
    415: {"description": "Not a JPEG, PNG or WebP image (or, for a batch, not JSON or CSV)"},
    422: {"description": "Missing or invalid field, or an image that cannot be decoded"},
    429: {"description": "Too many requests for this user"},
}
INCLUDE_PROBABILITIES = Query(description="also return the probability of every one of the 27 codes")


def user_key(request: Request) -> str:
    """Rate-limit key: the authenticated user (set by get_current_user, which runs first)."""
    return f"user:{request.state.user}"


def image_http_error(error: ProductImageError, metrics: ModelMetrics, batch: bool) -> HTTPException:
    """415 for a format the API does not take, 413 for too many pixels, 422 for a corrupt or too elongated image."""
    cause = error.error
    if isinstance(cause, UnsupportedImageFormatError):
        code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    elif isinstance(cause, ImageTooLargeError):
        code = status.HTTP_413_CONTENT_TOO_LARGE
    else:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT  # corrupt, or too elongated
    metrics.rejected_images.labels(rejection_reason(cause)).inc()
    return HTTPException(code, f"row {error.row}: {cause}" if batch else str(cause))


def predict_products(request: Request, deployment: Deployment, products: list[ProductInput], endpoint: str,
                     include_probabilities: bool) -> list[dict]:
    """Run the models, turning refused images into their 4xx answers; the request log names who answered."""
    try:
        results = deployment.predict(products, endpoint, include_probabilities)
    except ProductImageError as error:
        raise image_http_error(error, deployment.metrics, batch=endpoint == "batch") from error
    # A batch split between the two models logs both versions (and variants), comma-separated.
    request.state.model_version = ",".join(sorted({r["model_version"] for r in results}))
    request.state.variant = ",".join(sorted({r["variant"] for r in results}))
    return results


def batch_request_body(max_items: int) -> dict:
    """OpenAPI description of the three body types /predict/batch accepts."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": BatchProduct.model_json_schema(),
                                        "minItems": 1, "maxItems": max_items}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "CSV in the X_test_update.csv layout"}}}},
        "text/csv": {"schema": {"type": "string", "description": "CSV in the X_test_update.csv layout"}},
    }}}


async def read_batch(request: Request, settings: Settings) -> list[ProductInput]:
    """The products of a batch request, whatever of its three content types it uses."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Read as the bytes arrive: one product too many, or too large, stops the reading at once.
    if content_type == "application/json":
        return await read_json_batch(request.stream(), settings.max_batch_size, settings.max_upload_bytes)
    if content_type == "text/csv":
        return await read_csv_batch(request.stream(), settings.max_batch_size)
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not hasattr(upload, "read"):
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "multipart body needs a 'file' CSV part")
            return await read_csv_batch(upload_chunks(upload), settings.max_batch_size)
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        "send application/json (a list of products), text/csv or multipart/form-data (file=CSV)")


def add_predict_route(router: APIRouter, limiter: Limiter, settings: Settings) -> None:
    """POST /predict: one product as a multipart form, rate-limited per user."""

    @router.post("/predict", response_model=Prediction, max_body_size=settings.predict_body_limit,
                 summary="Predict the product type of one product")
    @limiter.limit(settings.predict_rate_limit, key_func=user_key)
    def predict(
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
        # A sync route: decoding and inference run in the thread pool, off the event loop.
        product = ProductInput(designation, description, read_upload(image, settings.max_upload_bytes),
                               productid, imageid, product_identifier)
        return predict_products(request, models, [product], "predict", include_probabilities)[0]


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
        Each prediction names the `model_version` and `variant` that answered it.
        """
        products = await read_batch(request, settings)
        current_version = models.served.current.version
        results = await run_in_threadpool(predict_products, request, models, products, "batch", include_probabilities)
        predictions = [{**result, "row": row} for row, result in enumerate(results)]
        return {"count": len(predictions), "model_version": current_version, "predictions": predictions}


def build_router(limiter: Limiter, settings: Settings) -> APIRouter:
    """The prediction routes, with this app's rate limits and body size limits."""
    router = APIRouter(tags=["prediction"], responses=PREDICT_ERRORS)
    add_predict_route(router, limiter, settings)
    add_batch_route(router, limiter, settings)
    return router
