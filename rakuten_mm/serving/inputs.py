"""Request bodies turned into ProductInputs: the /predict upload, and /predict/batch's JSON list or CSV.

A batch body may be up to RAKUTEN_API_MAX_BATCH_BYTES; its readers count and size products as their
bytes arrive and refuse one product too many, or one product too large, as soon as it shows up,
without reading or parsing the rest of the body.
"""

import base64
import binascii
import codecs
import json
import math
import re
import tempfile
from collections.abc import AsyncIterator, Callable

from fastapi import HTTPException, Request, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.deployment import ProductInput
from rakuten_mm.serving.schemas import (
    MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS, MAX_IDENTIFIER_CHARS, BatchProduct,
)

JSON_WHITESPACE = " \t\n\r"


def too_large(detail: str) -> HTTPException:
    """A 413 with a message saying what was too large."""
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail)


def unprocessable(detail: str) -> HTTPException:
    """A 422 for a payload that parses but makes no sense."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def over_count(max_items: int) -> HTTPException:
    """The 413 for one product more than max_items."""
    return too_large(f"batch holds more than {max_items} products: over the limit of {max_items}")


class JsonListReader:
    """Parse a JSON list item by item from text chunks, handing each item over as soon as it is complete."""

    def __init__(self, on_item: Callable[[int, object], None], max_items: int, max_item_chars: int):
        self.on_item, self.max_items, self.max_item_chars = on_item, max_items, max_item_chars
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.json = json.JSONDecoder()
        self.text, self.position, self.count = "", 0, 0
        self.expect = "["  # then "item", "," (a comma or the closing bracket), and "end"
        self.retry_at = 0  # an unfinished item is parsed again once the text has grown this long

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Take the next bytes of the body (final: the body is complete)."""
        try:
            self.text += self.decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            raise unprocessable(f"body is not valid JSON: not UTF-8 ({error.reason})") from None
        while self._step(final):
            pass
        # Only the unfinished item is kept: memory is bounded by max_item_chars, not the body.
        self.text, self.retry_at, self.position = self.text[self.position:], self.retry_at - self.position, 0
        if final and self.expect != "end":
            raise unprocessable("body is not valid JSON: the list is not closed" if self.expect != "["
                                else "body must be a JSON list of products")

    def _skip_whitespace(self) -> bool:
        """Move past whitespace; whether a character follows."""
        while self.position < len(self.text) and self.text[self.position] in JSON_WHITESPACE:
            self.position += 1
        return self.position < len(self.text)

    def _step(self, final: bool) -> bool:
        """Consume one token or item if the text holds it; whether to go on."""
        if not self._skip_whitespace():
            return False
        char = self.text[self.position]
        if self.expect == "end":
            raise unprocessable("body is not valid JSON: extra data after the list")
        if self.expect == "[":
            if char != "[":
                raise unprocessable("body must be a JSON list of products")
            self.position, self.expect = self.position + 1, "first"
            return True
        if self.expect in ("first", ",") and char == "]":
            self.position, self.expect = self.position + 1, "end"
            return True
        if self.expect == ",":
            if char != ",":
                raise unprocessable(f"body is not valid JSON: expected ',' or ']' after product {self.count - 1}")
            self.position, self.expect = self.position + 1, "item"
            return True
        return self._item(final)

    def _item(self, final: bool) -> bool:
        """Decode the next item, or wait for more text (413 once it is over max_item_chars)."""
        pending = len(self.text) - self.position
        if final or len(self.text) >= self.retry_at:
            try:
                item, end = self.json.raw_decode(self.text, self.position)
            except json.JSONDecodeError as error:
                if final:
                    raise unprocessable(f"body is not valid JSON: {error}") from None
                # Probably cut by the chunk boundary: try again once the pending text has doubled (linear time).
                self.retry_at = self.position + 2 * pending
            else:
                self._check_size(end - self.position)
                if self.count == self.max_items:
                    raise over_count(self.max_items)
                self.on_item(self.count, item)
                self.position, self.count, self.expect = end, self.count + 1, ","
                return True
        self._check_size(pending)  # an unfinished item already too long: no need to read it all
        return False

    def _check_size(self, chars: int) -> None:
        """413 when one product's JSON is longer than any valid product can be."""
        if chars > self.max_item_chars:
            raise too_large(f"row {self.count}: product is over the limit of {self.max_item_chars} characters")


class CsvRecordReader:
    """Split CSV text into records as it arrives (newlines inside quotes kept), counting and sizing them."""

    def __init__(self, max_records: int, max_record_chars: int):
        self.max_records, self.max_record_chars = max_records, max_record_chars
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.records: list[str] = []  # the header first
        self.pending, self.in_quotes = "", False

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Take the next bytes of the body (final: the body is complete)."""
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as error:
            raise unprocessable(f"CSV is not UTF-8 ({error.reason})") from None
        start = 0
        for index, char in enumerate(text):
            if char == '"':
                self.in_quotes = not self.in_quotes  # a doubled quote toggles twice
            elif char == "\n" and not self.in_quotes:
                self._record(self.pending + text[start:index + 1])
                self.pending, start = "", index + 1
        self.pending += text[start:]
        self._check_size(self.pending)
        if final and self.pending.strip():
            self._record(self.pending + "\n")
            self.pending = ""

    def _record(self, record: str) -> None:
        """Keep one complete record; 413 past the row or size limit."""
        self._check_size(record)
        if not record.strip():
            return  # blank lines, as pandas skips them
        if len(self.records) > self.max_records:  # the header is not a product
            raise over_count(self.max_records)
        self.records.append(record)

    def _check_size(self, record: str) -> None:
        """413 when one record (a product's row) is longer than any valid row can be."""
        if len(record) > self.max_record_chars:
            raise too_large(f"row {max(len(self.records) - 1, 0)}: CSV row is over the limit of "
                            f"{self.max_record_chars} characters")

    @property
    def text(self) -> str:
        """The records read, header included, as one CSV text."""
        return "".join(self.records)


DATA_URI_PREFIX = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")
# Room for the keys, ids and a data: URI prefix of one product, beyond its text and image.
PRODUCT_OVERHEAD_CHARS = 1024
# JSON may escape a character as \uXXXX (6 characters); CSV doubles quotes.
JSON_ESCAPE_FACTOR, CSV_ESCAPE_FACTOR = 6, 2
TEXT_CHARS = MAX_DESIGNATION_CHARS + MAX_DESCRIPTION_CHARS + MAX_IDENTIFIER_CHARS
UPLOAD_CHUNK_BYTES = 64 * 1024


async def read_upload(upload: UploadFile | None, max_bytes: int) -> bytes | None:
    """The uploaded image's bytes, None when no file was chosen; 413 over max_bytes, 422 if empty."""
    if upload is None:
        return None
    # Reads at most one byte past the limit: an oversized file is never fully loaded in memory.
    # (in memory below 1 MiB; a larger part spilled to disk is read in the thread pool by Starlette).
    data = await upload.read(max_bytes + 1)
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
                raise unprocessable("multipart body needs a 'file' CSV part")
            return await read_csv_batch(upload_chunks(upload), settings.max_batch_size)
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        "send application/json (a list of products), text/csv or multipart/form-data (file=CSV)")
