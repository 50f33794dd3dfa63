import math

import pandas as pd
import pytest

from rakuten_mm.data.raw_layout import read_features
from rakuten_mm.features.text import clean_text, is_missing, model_input_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<br>Attention !!! Ce produit", "Attention !!! Ce produit"),
        ("un moyen d&#39;exposer ses jouets", "un moyen d'exposer ses jouets"),
        ("Chaise &eacute;l&eacute;gante&nbsp;en bois", "Chaise élégante en bois"),
        ("double &amp;eacute;chappement", "double échappement"),
        ("<p>Lot de <strong>3</strong></p>\n\n<ul><li>rouge</li></ul>", "Lot de 3 rouge"),
        ("  Étagère   Multicolore ", "Étagère Multicolore"),
        ("5 &lt; 6", "5 < 6"),
    ],
)
def test_clean_text_unescapes_strips_and_keeps_accents(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize("missing", [None, math.nan, "", "   "])
def test_missing_values_clean_to_empty(missing):
    assert is_missing(missing)
    assert clean_text(missing) == ""


def test_model_input_lowercases_accented_capitals_and_truncates_description():
    assert model_input_text("Étagère ENFANT", "Très Belle", 4) == "étagère enfant . très"
    assert model_input_text("Livre", "", 100) == "livre"


def test_model_input_repeats_the_title_before_the_description():
    assert model_input_text("Lampe LED", "Blanche", 100, title_repeats=2) == "lampe led . lampe led . blanche"
    assert model_input_text("Lampe", "", 100, title_repeats=3) == "lampe . lampe . lampe"


def test_real_descriptions_lose_all_html(real_sample):
    raw = read_features(real_sample / "X_train_update.csv")
    with_tags = raw["description"].dropna().str.contains(r"<\w+[^>]*>|&#?\w+;", regex=True)
    assert with_tags.mean() > 0.1  # the real sample does carry HTML
    cleaned = [clean_text(value) for value in raw["description"]]
    leftovers = pd.Series(cleaned).str.contains(r"<\w+[^>]*>|&#?\w+;|\s{2,}", regex=True)
    assert not leftovers.any(), [c for c, bad in zip(cleaned, leftovers) if bad][:3]
    assert any("é" in c for c in cleaned)
