"""Image preprocessing: decoding, cropping, padding, and the archive-to-.npy batch job."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from rakuten_mm.data.archive import write_stored_zip
from rakuten_mm.features import images
from rakuten_mm.features.images import (
    STATUS_MISSING,
    STATUS_OK,
    STATUS_UNREADABLE,
    UnreadableImageError,
    crop_white_border,
    decode_jpeg_scaled,
    pad_to_square,
    preprocess_archive,
    preprocess_image_bytes,
    without_unread_luminance_scans,
)

SIZE = 16
DARK_COLOURS = [(200, 30, 30), (30, 160, 40), (20, 40, 190), (120, 60, 10), (10, 10, 10), (150, 20, 150)]


def encode(pixels: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    """Encode an array (or an RGBA array) into image bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def framed_jpeg(colour, side: int = 48, border: int = 8, **options) -> bytes:
    """A JPEG of a solid colour square inside a white frame."""
    pixels = np.full((side, side, 3), 255, dtype=np.uint8)
    pixels[border : side - border, border : side - border] = colour
    return encode(pixels, quality=95, **options)


def member_name(index: int) -> str:
    """A challenge-style image file name."""
    return f"image_{1000 + index}_product_{2000 + index}.jpg"


@pytest.fixture
def mixed_archive(tmp_path):
    """A zip of good, truncated and random-bytes members, and the names asked for (some absent)."""
    good = [framed_jpeg(colour, progressive=i % 2 == 0) for i, colour in enumerate(DARK_COLOURS)]
    members = {member_name(i): data for i, data in enumerate(good)}
    members[member_name(90)] = good[0][: len(good[0]) // 2]
    members[member_name(91)] = np.random.default_rng(0).bytes(900)
    # Nested folders, as in the challenge's own zip: names are matched by basename.
    zip_path = tmp_path / "images.zip"
    write_stored_zip(zip_path, ((f"image_train/{name}", data) for name, data in members.items()))
    names = [member_name(5), None, member_name(90), member_name(0), "image_0_product_0.jpg",
             member_name(91), member_name(3), member_name(1), member_name(4), member_name(2)]
    expected = [STATUS_OK, STATUS_MISSING, STATUS_UNREADABLE, STATUS_OK, STATUS_MISSING,
                STATUS_UNREADABLE, STATUS_OK, STATUS_OK, STATUS_OK, STATUS_OK]
    return zip_path, names, np.array(expected), members


def test_archive_rows_follow_names_and_statuses(mixed_archive, tmp_path):
    """Row i is names[i]; missing and corrupt images become white rows with their status."""
    zip_path, names, expected, _ = mixed_archive
    statuses = preprocess_archive(zip_path, names, tmp_path / "out.npy", SIZE, workers=1, chunk_size=3)
    rows = np.load(tmp_path / "out.npy")
    assert rows.shape == (len(names), SIZE, SIZE, 3) and rows.dtype == np.uint8
    np.testing.assert_array_equal(statuses, expected)
    for row, name, status in zip(rows, names, statuses):
        if status != STATUS_OK:
            assert (row == 255).all()
            continue
        colour = DARK_COLOURS[int(name.split("_")[1]) - 1000]
        # The crop leaves only the solid square (plus a 2-pixel margin), so the centre is pure colour.
        centre = row[SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4].reshape(-1, 3)
        assert np.abs(centre.astype(int) - colour).max() <= 6, name


def test_archive_rows_equal_single_image_preprocessing(mixed_archive, tmp_path):
    """The batch job and the serving path give the same pixels for the same bytes."""
    zip_path, names, _, members = mixed_archive
    statuses = preprocess_archive(zip_path, names, tmp_path / "out.npy", SIZE, workers=1)
    rows = np.load(tmp_path / "out.npy")
    for row, name, status in zip(rows, names, statuses):
        if status == STATUS_OK:
            np.testing.assert_array_equal(row, preprocess_image_bytes(members[name], SIZE))


def test_parallel_matches_sequential_bit_for_bit(mixed_archive, tmp_path, monkeypatch):
    """Worker count and chunking never change a byte of the output."""
    zip_path, names, expected, _ = mixed_archive
    monkeypatch.setattr(images, "MIN_IMAGES_PER_WORKER", 1)  # a pool for these few images
    sequential = preprocess_archive(zip_path, names, tmp_path / "seq.npy", SIZE, workers=1, chunk_size=4)
    parallel = preprocess_archive(zip_path, names, tmp_path / "par.npy", SIZE, workers=2, chunk_size=2)
    np.testing.assert_array_equal(sequential, expected)
    np.testing.assert_array_equal(parallel, expected)
    assert (tmp_path / "seq.npy").read_bytes() == (tmp_path / "par.npy").read_bytes()


def test_few_images_are_preprocessed_without_starting_worker_processes(mixed_archive, tmp_path, monkeypatch):
    """Starting spawned workers costs more than preprocessing a few hundred images in the caller."""
    zip_path, names, expected, _ = mixed_archive

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(images, "ProcessPoolExecutor", no_pool)
    assert len(names) < 2 * images.MIN_IMAGES_PER_WORKER
    np.testing.assert_array_equal(preprocess_archive(zip_path, names, tmp_path / "few.npy", SIZE, workers=2),
                                  expected)
    monkeypatch.setattr(images, "MIN_IMAGES_PER_WORKER", 1)
    with pytest.raises(AssertionError, match="process pool"):
        preprocess_archive(zip_path, names, tmp_path / "pool.npy", SIZE, workers=2, chunk_size=2)


def test_damaged_zip_member_is_unreadable_not_fatal(tmp_path):
    """A member whose stored bytes no longer match their CRC counts as unreadable."""
    zip_path = tmp_path / "damaged.zip"
    write_stored_zip(zip_path, [(member_name(0), framed_jpeg((0, 0, 0))), (member_name(1), framed_jpeg((0, 0, 90)))])
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(member_name(0))
    # Stored members start right after a 30-byte local header, the name and any extra field.
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(zip_path.read_bytes())
    damaged[data_start + 200] ^= 0xFF
    zip_path.write_bytes(bytes(damaged))
    statuses = preprocess_archive(zip_path, [member_name(0), member_name(1)], tmp_path / "out.npy", SIZE, workers=1)
    np.testing.assert_array_equal(statuses, [STATUS_UNREADABLE, STATUS_OK])


def test_empty_name_list_needs_no_archive(tmp_path):
    """A split without rows writes an empty array even when its zip does not exist."""
    statuses = preprocess_archive(tmp_path / "absent.zip", [], tmp_path / "empty.npy", SIZE)
    assert statuses.shape == (0,)
    assert np.load(tmp_path / "empty.npy").shape == (0, SIZE, SIZE, 3)


@pytest.mark.parametrize("data", [framed_jpeg((0, 0, 0))[:300], b"not an image at all", b""])
def test_undecodable_bytes_raise_unreadable(data):
    """Truncated, random and empty bytes raise the module's ValueError subclass."""
    with pytest.raises(UnreadableImageError):
        decode_jpeg_scaled(data, 8)
    with pytest.raises(ValueError):
        preprocess_image_bytes(data, SIZE)


def test_crop_white_border_keeps_margin_exactly():
    """A block inside a white frame is cut out with `margin` pixels kept on every side."""
    image = np.full((40, 60, 3), 255, dtype=np.uint8)
    image[10:20, 20:35] = (10, 20, 30)
    image[25, 40] = (255, 255, 239)  # one channel under the threshold makes a pixel content
    image[5, 5] = (240, 240, 240)  # at the threshold is still white
    cropped = crop_white_border(image, white_threshold=240, margin=2)
    np.testing.assert_array_equal(cropped, image[8:28, 18:43])


def test_crop_white_border_clips_margin_at_edges_and_ignores_all_white():
    """The margin never goes past the frame; an all-white image comes back unchanged."""
    image = np.full((20, 20, 3), 255, dtype=np.uint8)
    assert crop_white_border(image, 240, 2) is image
    image[0:3, 17:20] = 0
    assert crop_white_border(image, 240, 2).shape == (5, 5, 3)


def test_pad_to_square_centres_content():
    """A wide image sits in the middle of a white square; a square one is untouched."""
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    square = pad_to_square(wide)
    assert square.shape == (30, 30, 3)
    assert (square[10:20] == 0).all()
    assert (square[:10] == 255).all() and (square[20:] == 255).all()
    assert pad_to_square(square) is square


def test_preprocess_keeps_aspect_ratio():
    """A black 3:1 bar fills the output's width and a third of its height."""
    pixels = np.full((200, 400, 3), 255, dtype=np.uint8)
    pixels[50:110, 20:200] = 0
    out = preprocess_image_bytes(encode(pixels, "PNG"), 30)
    dark_rows = np.flatnonzero((out < 128).all(axis=2).any(axis=1))
    dark_columns = np.flatnonzero((out < 128).all(axis=2).any(axis=0))
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8 and out.flags.writeable
    assert dark_columns.size >= 28
    assert 8 <= dark_rows.size <= 12
    assert abs((dark_rows[0] + dark_rows[-1]) / 2 - 14.5) <= 1  # vertically centred


@pytest.mark.parametrize(
    ("min_size", "expected_side"), [(64, 125), (100, 125), (126, 250), (250, 250), (251, 500), (900, 500)]
)
def test_decode_jpeg_scaled_uses_dct_scaling(min_size, expected_side):
    """A 500px JPEG decodes at the smallest 1/1, 1/2, 1/4, 1/8 scale that stays >= min_size."""
    image = decode_jpeg_scaled(framed_jpeg((50, 60, 70), side=500, border=100, progressive=True), min_size)
    assert image.mode == "RGB"
    assert image.size == (expected_side, expected_side)


def product_photo(progressive: bool = True) -> bytes:
    """A 500px JPEG of a detailed object on white: its AC coefficients carry real information."""
    rng = np.random.default_rng(5)
    pixels = np.full((500, 500, 3), 255, dtype=np.uint8)
    coarse = rng.integers(0, 220, size=(30, 20, 3), dtype=np.uint8)
    pixels[80:380, 150:350] = np.asarray(Image.fromarray(coarse).resize((200, 300), Image.Resampling.BICUBIC))
    return encode(pixels, quality=85, progressive=progressive)


def full_decode_at(data: bytes, min_size: int) -> np.ndarray:
    """Every scan of a JPEG decoded at the DCT scale Pillow picks for min_size."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (min_size, min_size))
    return np.asarray(image.convert("RGB"), dtype=float)


def scan_headers(data: bytes) -> list[tuple[bytes, int, int, int]]:
    """(component ids, Ss, Se, Ah) of every SOS segment, read independently of the code under test."""
    headers, position = [], 2
    while position < len(data) - 1:
        marker = data[position + 1]
        if marker == 0xD9:
            break
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:
            count = data[position + 4]
            spectral = position + 5 + 2 * count
            headers.append((data[position + 5:spectral:2], data[spectral], data[spectral + 1], data[spectral + 2] >> 4))
            position += 2 + length
            while not (data[position] == 0xFF and data[position + 1] not in (0x00, *range(0xD0, 0xD8), 0xFF)):
                position += 1  # entropy-coded data, up to the next marker
        else:
            position += 2 + length
    return headers


def test_progressive_jpeg_at_quarter_scale_skips_luminance_refinements_and_unread_bands():
    """Luminance AC scans that refine bits or add coefficients past the 2 x 2 a 1/4-scale decode reads are cut."""
    data = product_photo()
    short = without_unread_luminance_scans(data, 64)
    luminance = scan_headers(data)[0][0][:1]
    kept = [h for h in scan_headers(data) if not (h[0] == luminance and h[1] >= 1 and (h[3] > 0 or h[1] > 4))]
    assert scan_headers(short) == kept and 3 <= len(kept) < len(scan_headers(data))
    assert len(short) < 0.7 * len(data) and short.count(b"\xff\xc4") == data.count(b"\xff\xc4")  # Huffman tables stay
    skipped, whole = full_decode_at(short, 64), full_decode_at(data, 64)
    assert skipped.shape == whole.shape == (125, 125, 3)
    assert 0 < np.abs(skipped - whole).mean() < 2.5
    # The preprocessing decodes the shortened file (on this noisy test photo the crop then keeps one
    # more row, so its 64 px output is compared with the shortened decode, not the whole one).
    reference = np.asarray(Image.fromarray(pad_to_square(crop_white_border(skipped.astype(np.uint8), 240, 2)))
                           .resize((64, 64), Image.Resampling.HAMMING), dtype=float)
    assert np.abs(preprocess_image_bytes(data, 64) - reference).mean() < 1.0


def test_progressive_jpeg_at_eighth_scale_keeps_only_what_its_decode_reads():
    """At 1/8 scale a block is its DC coefficient alone: without the luminance refinements, the same pixels."""
    data = product_photo()
    short = without_unread_luminance_scans(data, 62)  # 500 // 62 = 8: 1/8 scale, 63 px
    luminance = scan_headers(data)[0][0][:1]
    assert [h for h in scan_headers(short) if h[0] == luminance and h[1] >= 1] == [(luminance, 1, 5, 0)]
    assert np.array_equal(full_decode_at(short, 62), full_decode_at(data, 62))


def test_other_jpegs_keep_every_scan():
    """Baseline JPEGs, progressive ones decoded at 1/2 scale or more, and damaged files are left whole."""
    progressive = product_photo()
    baseline = product_photo(progressive=False)
    assert without_unread_luminance_scans(baseline, 64) == baseline
    assert without_unread_luminance_scans(progressive, 126) == progressive  # 1/2 scale: 250 px
    truncated = progressive[: len(progressive) - 50]
    assert without_unread_luminance_scans(truncated, 64) == truncated
    with pytest.raises(UnreadableImageError):
        preprocess_image_bytes(truncated, 64)
    png = encode(np.zeros((600, 600, 3), dtype=np.uint8), "PNG")
    for data in (b"", b"\xff\xd8", b"\xff\xd8\xff\xc2\x00", np.random.default_rng(1).bytes(500), png):
        assert without_unread_luminance_scans(data, 64) == data


def test_decode_jpeg_scaled_keeps_both_sides_of_non_square_images():
    """The scale is chosen by the shorter side."""
    pixels = np.zeros((130, 500, 3), dtype=np.uint8)
    width, height = decode_jpeg_scaled(encode(pixels), 64).size
    assert height >= 64 and width < 500


def test_png_with_transparency_is_flattened_on_white():
    """PNG input works; transparent pixels become white background, which then gets cropped."""
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[10:30, 10:30] = (0, 0, 200, 255)
    decoded = np.asarray(decode_jpeg_scaled(encode(rgba, "PNG"), 8))
    assert decoded.shape == (40, 40, 3)
    assert (decoded[0, 0] == 255).all() and tuple(decoded[20, 20]) == (0, 0, 200)
    out = preprocess_image_bytes(encode(rgba, "PNG"), SIZE)
    assert tuple(out[SIZE // 2, SIZE // 2]) == (0, 0, 200)


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped():
    """A 16-bit PNG keeps its grey levels (high byte) instead of saturating to white."""
    levels = np.full((20, 20), 100 * 256, dtype=np.uint16)
    decoded = np.asarray(decode_jpeg_scaled(encode(levels, "PNG"), 8))
    assert decoded.shape == (20, 20, 3) and (decoded == 100).all()


def test_real_photos_are_cropped_and_sane(real_sample):
    """On real catalogue photos the white border is removed for most and outputs look like photos."""
    photos = sorted((real_sample / "image_train").glob("*.jpg"))[:12]
    if not photos:
        pytest.skip("no real photos in the sample")
    cropped = 0
    for photo in photos:
        data = photo.read_bytes()
        decoded = np.asarray(decode_jpeg_scaled(data, 64))
        assert 64 <= min(decoded.shape[:2]) < 500
        cropped += crop_white_border(decoded, 240, 2).shape[:2] != decoded.shape[:2]
        out = preprocess_image_bytes(data, 64)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        assert out.std() > 5 and (out < 240).any(axis=2).mean() > 0.05  # real content, not blank
    assert cropped >= 2 * len(photos) // 3


def test_invalid_arguments_are_rejected(tmp_path):
    """Nonsense sizes, worker counts and archives fail loudly, before any output is written."""
    with pytest.raises(ValueError):
        decode_jpeg_scaled(framed_jpeg((0, 0, 0)), 0)
    with pytest.raises(ValueError):
        preprocess_archive(tmp_path / "x.zip", ["a.jpg"], tmp_path / "x.npy", SIZE, workers=0)
    with pytest.raises(FileNotFoundError):
        preprocess_archive(tmp_path / "absent.zip", ["a.jpg"], tmp_path / "x.npy", SIZE, workers=2)
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        preprocess_archive(tmp_path / "fake.zip", ["a.jpg"], tmp_path / "x.npy", SIZE, workers=2)
    assert not (tmp_path / "x.npy").exists()


def test_archive_members_are_read_not_extracted(mixed_archive, tmp_path):
    """Nothing but the output file appears on disk."""
    zip_path, names, _, _ = mixed_archive
    before = set(tmp_path.rglob("*"))
    preprocess_archive(zip_path, names, tmp_path / "out.npy", SIZE, workers=1)
    assert set(tmp_path.rglob("*")) - before == {tmp_path / "out.npy"}
    assert zipfile.is_zipfile(zip_path)
