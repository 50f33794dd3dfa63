"""The incremental batch readers: the same products whatever the chunking, and refusals before the rest is read."""

import csv
import io
import json

import pytest
from fastapi import HTTPException

from rakuten_mm.serving.inputs import CsvRecordReader, JsonListReader

PRODUCTS = [{"designation": "Théière « fonte » 🫖", "description": "a\nb \\\"quoted\\\" ]},[", "productid": 1},
            {"designation": "Lampe", "description": None}, {"designation": "x" * 300, "imageid": 7}]


def chunked(data: bytes, size: int) -> list[bytes]:
    """data cut every size bytes (multi-byte characters and tokens split across chunks)."""
    return [data[start:start + size] for start in range(0, len(data), size)]


def read_json(chunks: list[bytes], max_items: int = 10, max_item_chars: int = 10_000) -> list:
    """The items a JsonListReader hands over for these chunks."""
    items = []
    reader = JsonListReader(lambda row, item: items.append((row, item)), max_items, max_item_chars)
    for chunk in chunks:
        reader.feed(chunk)
    reader.feed(b"", final=True)
    return items


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
def test_json_items_are_the_same_whatever_the_chunking(size):
    body = json.dumps(PRODUCTS, ensure_ascii=False, indent=1).encode()
    assert read_json(chunked(body, size)) == list(enumerate(PRODUCTS))


def test_json_stops_at_the_first_item_too_many_without_the_rest():
    items = []
    reader = JsonListReader(lambda row, item: items.append(item), 2, 10_000)
    reader.feed(b'[{"designation": "a"}, {"designation": "b"},')
    with pytest.raises(HTTPException) as refused:
        reader.feed(b' {"designation": "c"}, garbage that is never parsed')
    assert refused.value.status_code == 413 and len(items) == 2


def test_json_refuses_an_unfinished_item_once_it_is_too_long():
    reader = JsonListReader(lambda row, item: None, 10, 1_000)
    reader.feed(b'[{"designation": "a"}, {"description": "')
    with pytest.raises(HTTPException) as refused:
        reader.feed(b"x" * 2_000)  # the item is not even complete yet
    assert refused.value.status_code == 413 and refused.value.detail.startswith("row 1:")


@pytest.mark.parametrize("body", [b"", b"{}", b"[1, 2", b'[{"a": 1}] [', b"[1 2]", b"\xff[]"])
def test_json_that_is_not_a_closed_list_is_422(body):
    with pytest.raises(HTTPException) as refused:
        read_json(chunked(body, 1) if body else [])
    assert refused.value.status_code == 422


@pytest.mark.parametrize("size", [1, 3, 50, 100_000])
def test_csv_records_keep_quoted_newlines_whatever_the_chunking(size):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["", "designation", "description", "productid", "imageid"])
    for index, product in enumerate(PRODUCTS):
        writer.writerow([index, product["designation"], product.get("description") or "", 1, 2])
    reader = CsvRecordReader(10, 10_000)
    for chunk in chunked(("\ufeff" + buffer.getvalue()).encode(), size):
        reader.feed(chunk)
    reader.feed(b"", final=True)
    rows = list(csv.reader(io.StringIO(reader.text)))
    assert len(reader.records) == 4 and [row[2] for row in rows[1:]] == [p.get("description") or "" for p in PRODUCTS]


def test_csv_stops_at_the_first_row_too_many_and_at_a_row_too_long():
    reader = CsvRecordReader(2, 100)
    reader.feed(b",designation\n1,a\n2,b\n")
    with pytest.raises(HTTPException) as refused:
        reader.feed(b'3,c\n4,"never closed')
    assert refused.value.status_code == 413 and "over the limit of 2" in refused.value.detail
    long_row = CsvRecordReader(10, 100)
    with pytest.raises(HTTPException) as refused:
        long_row.feed(b',designation\n1,"' + b"x" * 200)
    assert refused.value.status_code == 413 and refused.value.detail.startswith("row 0:")
