"""Turning request payloads into ProductInputs: uploads, base64 images, JSON and CSV batches."""

import base64
import binascii
import json
import re
import tempfile

from fastapi import HTTPException, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.serving.schemas import BatchProduct
from rakuten_mm.serving.service import ProductInput

BATCH_ADAPTER = TypeAdapter(list[BatchProduct])
DATA_URI_PREFIX = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")


def too_large(detail: str) -> HTTPException:
    """A 413 with a message saying what was too large."""
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail)


def unprocessable(detail: str) -> HTTPException:
    """A 422 for a payload that parses but makes no sense."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def read_upload(upload: UploadFile | None, max_bytes: int) -> bytes | None:
    """The uploaded image's bytes, None when no file was chosen; 413 over max_bytes, 422 if empty."""
    if upload is None:
        return None
    # Reads at most one byte past the limit: an oversized file is never fully loaded in memory.
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large(f"image is over the limit of {max_bytes} bytes")
    if not data:
        # Browsers send an empty part, without a file name, when no file was chosen.
        if not upload.filename:
            return None
        raise unprocessable(f"image file {upload.filename!r} is empty")
    return data


def decode_base64_image(text: str | None, max_bytes: int, row: int) -> bytes | None:
    """Bytes of a base64 image field (None when absent or empty); 413 over max_bytes, 422 if not base64."""
    if not text:
        return None
    text = DATA_URI_PREFIX.sub("", text, count=1)
    # 4 base64 characters carry 3 bytes: refuse before decoding anything over the limit.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise too_large(f"row {row}: image is over the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise unprocessable(f"row {row}: image_base64 is not valid base64 ({error})") from error
    if len(data) > max_bytes:
        raise too_large(f"row {row}: image is over the limit of {max_bytes} bytes")
    return data or None


def check_batch_size(count: int, max_size: int) -> None:
    """413 when a batch holds more products than allowed, 422 when it holds none."""
    if count > max_size:
        raise too_large(f"batch of {count} products is over the limit of {max_size}")
    if count == 0:
        raise unprocessable("batch holds no product")


def parse_json_batch(body: bytes, max_size: int, max_image_bytes: int) -> list[ProductInput]:
    """Products of a JSON list body; the usual 422 validation errors for bad items."""
    try:
        items = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise unprocessable(f"body is not valid JSON: {error}") from error
    if not isinstance(items, list):
        raise unprocessable("body must be a JSON list of products")
    check_batch_size(len(items), max_size)
    try:
        products = BATCH_ADAPTER.validate_python(items)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from error
    return [
        ProductInput(p.designation, p.description, decode_base64_image(p.image_base64, max_image_bytes, row),
                     p.productid, p.imageid, p.product_identifier)
        for row, p in enumerate(products)
    ]


def parse_csv_batch(data: bytes, max_size: int) -> list[ProductInput]:
    """Products of a CSV in the X_test_update.csv layout (read by the pipeline's own reader); text only."""
    # The pipeline's reader takes a path; the upload is small (the body limit bounds it).
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        handle.write(data)
        handle.flush()
        try:
            table = read_features(handle.name)
        # RawLayoutError, pandas parser errors and undecodable bytes are all ValueErrors.
        except ValueError as error:
            raise unprocessable(f"CSV is not in the X_test_update.csv layout: {error}") from error
    check_batch_size(len(table), max_size)
    return [
        ProductInput(row.designation, row.description, None, int(row.productid), int(row.imageid), str(index))
        for index, row in zip(table.index, table.itertuples(index=False), strict=True)
    ]
