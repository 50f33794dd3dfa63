"""Incremental readers of /predict/batch bodies: products counted and sized as their bytes arrive.

A body may be up to RAKUTEN_API_MAX_BATCH_BYTES; these readers refuse one product too many, or one
product too large, as soon as it shows up, without reading or parsing the rest of the body.
"""

import codecs
import json
from collections.abc import Callable

from fastapi import HTTPException, status

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
