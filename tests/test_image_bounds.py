"""Bounded work per image in the shared preprocessing: refusals before decoding, shrinking before padding."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from rakuten_mm.data.archive import write_stored_zip
from rakuten_mm.features.images import (
    STATUS_OK,
    STATUS_UNREADABLE,
    ImageAspectRatioError,
    UnreadableImageError,
    crop_white_border,
    decode_jpeg_scaled,
    pad_to_square,
    preprocess_archive,
    preprocess_image_bytes,
    resize_square,
)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Image bytes in fmt."""
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def shapes(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A product-like picture: two filled shapes on white."""
    image = Image.new(mode, (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 8, width // 2, height * 7 // 8), fill="#c03020")
    draw.rectangle((width // 2, height // 4, width * 7 // 8, height * 3 // 4), fill="#2040b0")
    return image


def full_size_steps(image: Image.Image, size: int) -> np.ndarray:
    """crop -> pad -> resize on the fully decoded image: the steps without any shrinking."""
    pixels = np.asarray(image.convert("RGB"))
    return resize_square(pad_to_square(crop_white_border(pixels, 240, 2)), size)


@pytest.mark.parametrize("width, height", [(40_000, 1_000), (1, 40_000), (11, 1)])
def test_too_elongated_images_are_refused_from_their_header(width, height, monkeypatch):
    data = encode(Image.new("1", (width, height), 1), "PNG")

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageAspectRatioError, match=f"{width}x{height}.*over the limit of 10:1"):
        decode_jpeg_scaled(data, 32)


def test_the_aspect_ratio_limit_is_inclusive_and_can_be_lifted():
    data = encode(shapes(400, 40), "PNG")
    assert preprocess_image_bytes(data, 16).shape == (16, 16, 3)  # exactly 10:1
    with pytest.raises(ImageAspectRatioError):
        preprocess_image_bytes(data, 16, max_aspect_ratio=9.9)
    strip = encode(shapes(1000, 40), "PNG")
    assert preprocess_image_bytes(strip, 16, max_aspect_ratio=None).shape == (16, 16, 3)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_a_catalogue_size_image_is_not_shrunk(fmt):
    # 500 x 500, as the challenge's photos: the output is exactly the unshrunk steps' (JPEG via its draft decode).
    data = encode(shapes(500, 500), fmt)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (64, 64))
        expected = full_size_steps(image, 64)
    np.testing.assert_array_equal(preprocess_image_bytes(data, 64), expected)


@pytest.mark.parametrize("mode", ["RGB", "1", "P", "RGBA"])
def test_a_large_image_is_shrunk_before_padding_with_nearly_the_same_result(mode):
    image = shapes(3000, 1200, "RGB")
    image = image.convert(mode) if mode != "P" else image.convert("P", palette=Image.Palette.ADAPTIVE)
    data = encode(image, "PNG")
    decoded = decode_jpeg_scaled(data, 32)
    # The longest side is brought under 2 x 8 x 32 = 512 pixels, so the square canvas stays small.
    assert 256 <= max(decoded.size) < 512 and decoded.mode == "RGB"
    shrunk = preprocess_image_bytes(data, 32).astype(int)
    full = full_size_steps(Image.open(io.BytesIO(data)), 32).astype(int)
    assert np.abs(shrunk - full).mean() < 2.5, np.abs(shrunk - full).mean()


def test_the_pipeline_counts_refused_images_as_unreadable(tmp_path):
    members = {"good.jpg": encode(shapes(120, 100), "JPEG"), "strip.jpg": encode(Image.new("1", (4000, 100), 1), "PNG"),
               "anim.jpg": encode(shapes(60, 60), "GIF"), "tall.jpg": encode(shapes(100, 1200), "PNG")}
    zip_path = tmp_path / "images.zip"
    write_stored_zip(zip_path, members.items())
    statuses = preprocess_archive(zip_path, list(members), tmp_path / "out.npy", 16, workers=1)
    # The API refuses the same three: a 40:1 strip, a GIF (not a format the API takes) and a 12:1 image.
    assert statuses.tolist() == [STATUS_OK, STATUS_UNREADABLE, STATUS_UNREADABLE, STATUS_UNREADABLE]
    for name in ("strip.jpg", "anim.jpg", "tall.jpg"):
        with pytest.raises(UnreadableImageError):
            preprocess_image_bytes(members[name], 16)
    lifted = preprocess_archive(zip_path, list(members), tmp_path / "lifted.npy", 16, workers=1, max_aspect_ratio=None)
    assert lifted.tolist() == [STATUS_OK, STATUS_OK, STATUS_UNREADABLE, STATUS_OK]
