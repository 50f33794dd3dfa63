"""The synthetic sample: deterministic, in the challenge layout, with realistic text and photos."""

import io
import random
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rakuten_mm.categories import CLASS_COUNTS, CODES
from rakuten_mm.data.synthetic import (
    DEFAULT_FILES,
    allocate_class_counts,
    draw_unique_ids,
    generate_sample,
    split_rng,
)
from rakuten_mm.data.synthetic_text import make_product_text

N_LABELLED, N_UNLABELLED = 27 * 5, 30
MISSING_RATE, CORRUPT_RATE = 0.05, 0.03
SAMPLE_ARGS = dict(n_labelled=N_LABELLED, n_unlabelled=N_UNLABELLED, seed=7,
                   missing_image_rate=MISSING_RATE, corrupt_image_rate=CORRUPT_RATE)
HTML_TAG = re.compile(r"<[a-z/][^>]*>")
HTML_ENTITY = re.compile(r"&(#\d+|[a-z]+);")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One small sample made with two worker processes, and its summary."""
    out_dir = tmp_path_factory.mktemp("sample")
    summary = generate_sample(out_dir, workers=2, **SAMPLE_ARGS)
    return out_dir, summary


@pytest.fixture(scope="module")
def texts():
    """600 generated product texts with classes in the real proportions."""
    codes = random.Random(0).choices(CODES, weights=[CLASS_COUNTS[c] for c in CODES], k=600)
    return codes, [make_product_text(code, random.Random(f"test:{i}")) for i, code in enumerate(codes)]


def read_x(out_dir, key):
    """A feature table the way the pipeline reads it."""
    return pd.read_csv(out_dir / DEFAULT_FILES[key], index_col=0, dtype={"designation": str, "description": str})


def test_same_arguments_give_identical_files_whatever_the_workers(sample, tmp_path):
    out_dir, _ = sample
    generate_sample(tmp_path, workers=1, **SAMPLE_ARGS)
    for name in DEFAULT_FILES.values():
        assert (tmp_path / name).read_bytes() == (out_dir / name).read_bytes(), name


def test_another_seed_gives_other_data(sample, tmp_path):
    out_dir, _ = sample
    generate_sample(tmp_path, n_labelled=30, n_unlabelled=0, seed=8, workers=1)
    other = read_x(tmp_path, "x_train")["designation"].tolist()
    assert other != read_x(out_dir, "x_train")["designation"][:30].tolist()


def test_tables_follow_the_challenge_layout(sample):
    out_dir, summary = sample
    header = (out_dir / DEFAULT_FILES["x_train"]).read_text(encoding="utf-8").splitlines()[0]
    assert header == ",designation,description,productid,imageid"
    assert (out_dir / DEFAULT_FILES["y_train"]).read_text().splitlines()[0] == ",prdtypecode"
    x_train, x_test = read_x(out_dir, "x_train"), read_x(out_dir, "x_test")
    labels = pd.read_csv(out_dir / DEFAULT_FILES["y_train"], index_col=0)
    assert list(x_train.index) == list(range(N_LABELLED)) and list(labels.index) == list(range(N_LABELLED))
    assert list(x_test.index) == list(range(N_LABELLED, N_LABELLED + N_UNLABELLED))
    assert list(x_test.columns) == list(x_train.columns) == ["designation", "description", "productid", "imageid"]
    assert x_train["description"].isna().any() and x_train["designation"].notna().all()
    assert summary["labelled"] == N_LABELLED and summary["unlabelled"] == N_UNLABELLED


def test_ids_are_unique_integers_in_realistic_ranges(sample):
    out_dir, _ = sample
    both = pd.concat([read_x(out_dir, "x_train"), read_x(out_dir, "x_test")])
    assert both["productid"].is_unique and both["imageid"].is_unique
    assert both["productid"].between(100_000, 4_300_000_000).all()
    assert both["imageid"].between(100_000, 1_330_000_000).all()
    assert pd.api.types.is_integer_dtype(both["productid"]) and pd.api.types.is_integer_dtype(both["imageid"])


def test_id_prefix_does_not_depend_on_the_count():
    bands = ((1.0, 0, 50_000),)
    short = draw_unique_ids(100, split_rng(1, 3, 0), bands)
    long = draw_unique_ids(5000, split_rng(1, 3, 0), bands)
    assert np.array_equal(short, long[:100]) and len(set(long.tolist())) == 5000


def test_labels_have_every_code_in_real_proportions(sample):
    out_dir, _ = sample
    labels = pd.read_csv(out_dir / DEFAULT_FILES["y_train"], index_col=0)["prdtypecode"]
    assert labels.value_counts().to_dict() == {c: n for c, n in allocate_class_counts(N_LABELLED).items() if n}
    assert set(labels) == set(CODES)
    # Shuffled, not grouped by class.
    assert (labels.diff().fillna(0) != 0).mean() > 0.8


@pytest.mark.parametrize("n_rows", [0, 10, 27, 120, 12000, 84916])
def test_class_allocation_is_largest_remainder(n_rows):
    counts = allocate_class_counts(n_rows)
    assert sum(counts.values()) == n_rows
    total = sum(CLASS_COUNTS.values())
    if n_rows >= len(CODES):
        assert min(counts.values()) >= 1
    if n_rows >= 1000:
        assert all(abs(counts[c] - n_rows * CLASS_COUNTS[c] / total) < 1 for c in CODES)
    if n_rows == total:
        assert counts == CLASS_COUNTS


def test_zip_members_match_rows_with_missing_and_corrupt_photos(sample):
    out_dir, summary = sample
    for split, n_rows in (("train", N_LABELLED), ("test", N_UNLABELLED)):
        table = read_x(out_dir, f"x_{split}")
        expected = [f"image_{i}_product_{p}.jpg" for i, p in zip(table["imageid"], table["productid"])]
        with zipfile.ZipFile(out_dir / DEFAULT_FILES[f"images_{split}"]) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
            assert names == [name for name in expected if name in set(names)]  # row order, archive root
            unreadable = sum(not is_readable_jpeg(archive.read(name)) for name in names)
        assert n_rows - len(names) == summary[f"missing_images_{split}"] == max(1, round(n_rows * MISSING_RATE))
        assert unreadable == summary[f"corrupt_images_{split}"] == max(1, round(n_rows * CORRUPT_RATE))
        assert summary[f"images_{split}"] == len(names)


def is_readable_jpeg(data: bytes) -> bool:
    """Whether PIL decodes the bytes completely."""
    try:
        Image.open(io.BytesIO(data)).load()
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def test_photos_are_500px_progressive_jpegs_on_white(sample):
    out_dir, _ = sample
    with zipfile.ZipFile(out_dir / DEFAULT_FILES["images_train"]) as archive:
        blobs = [archive.read(name) for name in archive.namelist()]
    good = [data for data in blobs if is_readable_jpeg(data)]
    assert 10 <= np.median([len(data) for data in good]) / 1024 <= 45
    for data in good[:40]:
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == (500, 500) and image.mode == "RGB"
        assert image.info.get("progressive") or image.info.get("progression")
        pixels = np.asarray(image, dtype=np.int16)
        corners = np.concatenate([pixels[:4, :4], pixels[:4, -4:], pixels[-4:, :4], pixels[-4:, -4:]])
        assert corners.min() >= 238
        assert (pixels < 200).any(axis=2).mean() > 0.05  # an object is drawn, not a blank frame


def test_photos_depend_on_the_class(sample):
    out_dir, _ = sample
    labels = pd.read_csv(out_dir / DEFAULT_FILES["y_train"], index_col=0)["prdtypecode"]
    table = read_x(out_dir, "x_train")
    mean_colours = {}
    with zipfile.ZipFile(out_dir / DEFAULT_FILES["images_train"]) as archive:
        for code in (2583, 50):  # blue pools vs dark controllers
            rows = table[labels == code]
            colours = []
            for imageid, productid in zip(rows["imageid"], rows["productid"]):
                name = f"image_{imageid}_product_{productid}.jpg"
                if name in archive.namelist() and is_readable_jpeg(data := archive.read(name)):
                    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32).reshape(-1, 3)
                    colours.append(pixels[(pixels < 230).any(axis=1)].mean(axis=0))
            mean_colours[code] = np.mean(colours, axis=0)
    assert mean_colours[2583].sum() > mean_colours[50].sum() + 60  # pool photos are much brighter


def test_text_statistics_look_like_the_catalogue(texts):
    codes, generated = texts
    titles = [text.designation for text in generated]
    descriptions = [text.description for text in generated if text.description is not None]
    assert 0.27 <= 1 - len(descriptions) / len(generated) <= 0.43
    assert 0.11 <= np.mean([bool(HTML_TAG.search(d)) for d in descriptions]) <= 0.26
    assert 0.30 <= np.mean([bool(HTML_ENTITY.search(d)) for d in descriptions]) <= 0.50
    assert 0.08 <= np.mean([text.language == "en" for text in generated]) <= 0.22
    assert 50 <= np.median([len(title) for title in titles]) <= 78
    assert min(len(t) for t in titles) >= 10 and max(len(t) for t in titles) <= 250
    assert sum(ch in "éèàçœ" for title in titles for ch in title) > len(titles) / 2
    assert not any(HTML_TAG.search(title) for title in titles)


def test_books_lack_descriptions_more_than_pools(texts):
    codes, generated = texts
    def missing_share(wanted):
        """Share of rows without description among the wanted classes."""
        rows = [text for code, text in zip(codes, generated) if code in wanted]
        return np.mean([text.description is None for text in rows])

    assert missing_share({10, 2403, 2280}) > 0.7 > 0.2 > missing_share({2583, 1560})


def test_text_alone_is_informative_but_not_perfect():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.svm import LinearSVC

    codes = [code for code in CODES for _ in range(60)]
    texts = [make_product_text(code, random.Random(f"difficulty:{i}")) for i, code in enumerate(codes)]
    docs = np.array([t.designation + " " + (t.description or "") for t in texts])
    labels = np.array(codes)
    test = np.arange(len(codes)) % 4 == 0
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LinearSVC().fit(vectorizer.fit_transform(docs[~test]), labels[~test])
    score = f1_score(labels[test], model.predict(vectorizer.transform(docs[test])), average="weighted")
    assert 0.6 < score < 0.92


def test_file_names_can_be_overridden(tmp_path):
    files = {"x_train": "train.csv", "images_test": "test_photos.zip"}
    generate_sample(tmp_path, n_labelled=5, n_unlabelled=2, seed=1, workers=1, files=files)
    written = {path.name for path in tmp_path.iterdir()}
    assert written == {"train.csv", "test_photos.zip", DEFAULT_FILES["y_train"], DEFAULT_FILES["x_test"],
                       DEFAULT_FILES["images_train"]}
    with pytest.raises(ValueError):
        generate_sample(tmp_path, n_labelled=5, n_unlabelled=0, seed=1, files={"x_valid": "v.csv"})
