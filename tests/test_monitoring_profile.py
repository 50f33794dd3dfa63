"""The privacy-free input profile the API logs and the drift monitor compares."""

import collections
import random

import pandas as pd
import pytest

from rakuten_mm.categories import CLASS_COUNTS, CODES
from rakuten_mm.data.synthetic_text import make_product_text
from rakuten_mm.monitoring.profile import detect_language, input_profile


def test_profile_has_exactly_the_agreed_keys_and_no_text():
    profile = input_profile("<b>Peluche&nbsp;Licorne</b>  Rose", None, has_image=False)
    assert profile == {"title_length": len("Peluche Licorne Rose"), "description_missing": True,
                       "image_missing": True, "language": "fr"}


@pytest.mark.parametrize("description", [None, "", "   ", float("nan")])
def test_blank_descriptions_count_as_missing(description):
    assert input_profile("Board Game", description, True)["description_missing"] is True


@pytest.mark.parametrize(("title", "language"), [
    ("Coussin Décoratif Pour Canapé Avec Housse", "fr"),
    ("Wireless Gamepad For The Kids With Charging Station", "en"),
    ("Zöllner Schlafsack Mit Applikation Sternchen Blau", "de"),
    ("Xbox 360 250", "other"),
])
def test_detect_language_of_typical_titles(title, language):
    assert detect_language(title) == language


def test_undecided_title_falls_back_to_the_description():
    assert detect_language("Xbox 360 250", "Livré avec sa manette et le câble") == "fr"
    assert detect_language("Xbox 360 250", "Shipped with the controller and its cable") == "en"
    # A decided title wins over its description (imports often come with a French description).
    assert detect_language("The Legend Of The Kingdom", "Livré avec sa manette et le câble") == "en"


def test_language_matches_the_synthetic_generator_mostly():
    rng = random.Random(7)
    codes = rng.choices(CODES, weights=[CLASS_COUNTS[code] for code in CODES], k=3000)
    pairs = collections.Counter()
    for code in codes:
        product = make_product_text(code, rng)
        pairs[product.language, input_profile(product.designation, product.description, True)["language"]] += 1
    recall = {lang: pairs[lang, lang] / sum(v for (truth, _), v in pairs.items() if truth == lang)
              for lang in ("fr", "en")}
    # The generator's English titles mix in French catalogue words, so English recall stays below 1.
    assert recall["fr"] > 0.95 and recall["en"] > 0.7


def test_real_sample_is_mostly_french(real_sample):
    table = pd.read_csv(real_sample / "X_train_update.csv", index_col=0)
    languages = collections.Counter(input_profile(title, description, True)["language"]
                                    for title, description in zip(table["designation"], table["description"]))
    assert languages["fr"] / len(table) > 0.7 and languages["en"] > 0
