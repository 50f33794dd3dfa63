"""Text cleaning shared by training and serving: HTML out, accents kept, whitespace normalised."""

import html
import math
import re

_TAG = re.compile(r"<[^>]*>")
_WHITESPACE = re.compile(r"\s+")


def is_missing(value) -> bool:
    """True for None, NaN and empty or blank strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def clean_text(raw) -> str:
    """Unescape HTML entities, strip tags and normalise whitespace; missing values give ''."""
    if is_missing(raw):
        return ""
    text = str(raw)
    # Some descriptions are escaped twice (&amp;eacute;), so unescape until stable.
    for _ in range(3):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _TAG.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def model_input_text(title: str, description: str, max_description_chars: int, title_repeats: int = 1) -> str:
    """Join a cleaned title (title_repeats times) and description into the lower-cased string the models read."""
    # A repeated title doubles its n-grams' term counts against a long description's.
    description = description[:max_description_chars]
    joined = " . ".join([title] * title_repeats + ([description] if description else []))
    # Python lowercases accented capitals (É -> é); TensorFlow's lower() only handles ASCII.
    return joined.lower()


def model_input_texts(titles, descriptions, max_description_chars: int, title_repeats: int = 1) -> list[str]:
    """Vectorised model_input_text over two aligned sequences of cleaned strings."""
    return [
        model_input_text(title, description, max_description_chars, title_repeats)
        for title, description in zip(titles, descriptions, strict=True)
    ]
