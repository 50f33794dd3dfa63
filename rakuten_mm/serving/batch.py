"""Turning request payloads into ProductInputs: uploads, base64 images, JSON and CSV batches."""

import base64
import binascii
import math
import re
import tempfile
from collections.abc import AsyncIterator

from fastapi import UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.serving.batch_stream import CsvRecordReader, JsonListReader, too_large, unprocessable
from rakuten_mm.serving.schemas import (
    MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS, MAX_IDENTIFIER_CHARS, BatchProduct,
)
from rakuten_mm.serving.service import ProductInput

DATA_URI_PREFIX = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")
# Room for the keys, ids and a data: URI prefix of one product, beyond its text and image.
PRODUCT_OVERHEAD_CHARS = 1024
# JSON may escape a character as \uXXXX (6 characters); CSV doubles quotes.
JSON_ESCAPE_FACTOR, CSV_ESCAPE_FACTOR = 6, 2
TEXT_CHARS = MAX_DESIGNATION_CHARS + MAX_DESCRIPTION_CHARS + MAX_IDENTIFIER_CHARS
UPLOAD_CHUNK_BYTES = 64 * 1024


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


def validated_product(row: int, fields: object, max_image_bytes: int) -> ProductInput:
    """One product through the batch schema (required designation, max lengths); 422 naming its row."""
    try:
        product = BatchProduct.model_validate(fields)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", row, *e["loc"])} for e in errors]) from error
    return ProductInput(product.designation, product.description,
                        decode_base64_image(product.image_base64, max_image_bytes, row),
                        product.productid, product.imageid, product.product_identifier)


async def read_json_batch(chunks: AsyncIterator[bytes], max_size: int, max_image_bytes: int) -> list[ProductInput]:
    """Products of a JSON list body, each validated as it arrives; 413 at the first product too many or too large."""
    products: list[ProductInput] = []

    def take(row: int, item: object) -> None:
        products.append(validated_product(row, item, max_image_bytes))

    max_item_chars = math.ceil(max_image_bytes / 3) * 4 + JSON_ESCAPE_FACTOR * TEXT_CHARS + PRODUCT_OVERHEAD_CHARS
    reader = JsonListReader(take, max_size, max_item_chars)
    async for chunk in chunks:
        reader.feed(chunk)
    reader.feed(b"", final=True)
    check_batch_size(len(products), max_size)
    return products


def csv_fields(index, row) -> dict:
    """A row of the pipeline's table as BatchProduct fields (the index becomes product_identifier)."""
    # pandas reads empty cells as NaN: absent, as in the pipeline (a missing designation is then refused).
    text = {name: (None if value != value else value)
            for name, value in ((name, getattr(row, name)) for name in ("designation", "description"))}
    return {**text, "productid": int(row.productid), "imageid": int(row.imageid), "product_identifier": str(index)}


async def read_csv_batch(chunks: AsyncIterator[bytes], max_size: int) -> list[ProductInput]:
    """Products of a CSV in the X_test_update.csv layout; rows counted and sized while reading; text only."""
    reader = CsvRecordReader(max_size, CSV_ESCAPE_FACTOR * TEXT_CHARS + PRODUCT_OVERHEAD_CHARS)
    async for chunk in chunks:
        reader.feed(chunk)
    reader.feed(b"", final=True)
    # At most max_size bounded rows are left: the pipeline's own reader parses them (same semantics).
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        handle.write(reader.text.encode("utf-8"))
        handle.flush()
        try:
            table = read_features(handle.name)
        # RawLayoutError, pandas parser errors and undecodable bytes are all ValueErrors.
        except ValueError as error:
            raise unprocessable(f"CSV is not in the X_test_update.csv layout: {error}") from error
    check_batch_size(len(table), max_size)
    return [validated_product(row, csv_fields(index, values), 0)
            for row, (index, values) in enumerate(zip(table.index, table.itertuples(index=False), strict=True))]


async def upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    """The bytes of an uploaded file, a chunk at a time."""
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        yield chunk
