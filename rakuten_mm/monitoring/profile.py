"""What the monitoring keeps of one product: a few numbers and flags, never its text (no personal data)."""

import re

from rakuten_mm.features.text import clean_text, is_missing

LANGUAGES = ("fr", "en", "de", "other")

# Function words and very common catalogue words that only one of the three languages uses.
# Words shared by two of them ("set", "pack", "mini", "original", "in", "die") carry no vote.
_WORDS = {
    "fr": """le la les du des un une au aux et pour avec sur dans sans par en ou est pas
             noir noire blanc blanche rouge bleu bleue vert verte jaune gris grise marron rose
             enfant enfants femme femmes homme hommes fille garçon taille neuf nouveau nouvelle
             livre livres jeu jeux jouet jouets lot lots boite coussin housse cadeau maison jardin
             couleur haute qualité bois plastique métal coton cuir verre acier piscine revue tome
             ans mois pièces ensemble accessoire accessoires pratique peluche voiture tapis lampe
             rideau drap sac montre carte cartes chaussettes robe pantalon chemise""",
    "en": """the of and for with to by from on this that your you is are not new
             black white red blue green yellow grey gray brown pink purple silver gold
             kids children women men girl boy size toy toys game games book books cover case
             gift home garden wooden wood plastic metal cotton leather glass steel high quality
             edition card cards figure board pillow decor kitchen bag large small easy use fun cute
             creative lightweight foldable adjustable waterproof handmade luxury fashion classic sale
             hot camera gaming player christmas birthday wall light lights clock mirror frame remote
             control battery charger wireless screen holder storage shelf chair dress shirt socks""",
    "de": """der die das den dem des ein eine einen und mit für von zu zum zur auf aus bei
             ist nicht oder schwarz weiß weiss rot blau grün gelb grau kinder damen herren
             größe neu spiel spiele buch bücher geschenk holz kunststoff metall deutsche
             deutsch version band auflage""",
}


def words_of_one_language(word_lists: dict[str, str]) -> dict[str, str]:
    """Map each listed word to its language, leaving out words listed under two languages."""
    languages_of = {}
    for language, words in word_lists.items():
        for word in words.split():
            languages_of.setdefault(word, set()).add(language)
    # A word listed for two languages ("des", "die", "band") decides nothing.
    return {word: next(iter(langs)) for word, langs in languages_of.items() if len(langs) == 1}


LANGUAGE_OF_WORD = words_of_one_language(_WORDS)

# Letters that only one of the three languages writes (ü and ë are left out: French uses them too).
_ACCENTS = {"fr": "éèêàâçùûôîïœ", "de": "äöß"}
LANGUAGE_OF_LETTER = {letter: language for language, letters in _ACCENTS.items() for letter in letters}

_TOKEN = re.compile(r"[^\W\d_]+")
# Only the start of a description is read: enough to vote, cheap on 10-kB spec sheets.
DESCRIPTION_CHARS_READ = 400


def language_votes(text: str) -> dict[str, int]:
    """Per-language count of the words and accented letters only that language uses."""
    votes = dict.fromkeys(LANGUAGES[:-1], 0)
    for token in _TOKEN.findall(text.lower()):
        language = LANGUAGE_OF_WORD.get(token)
        if language is None:
            # An unlisted word still votes through a letter only one language writes.
            language = next((LANGUAGE_OF_LETTER[c] for c in token if c in LANGUAGE_OF_LETTER), None)
        if language is not None:
            votes[language] += 1
    return votes


def winning_language(votes: dict[str, int]) -> str | None:
    """The language with strictly the most votes, or None when there are none or a tie."""
    ranked = sorted(votes.items(), key=lambda item: item[1], reverse=True)
    if ranked[0][1] == 0 or ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def detect_language(title: str, description: str = "") -> str:
    """'fr', 'en', 'de' from the title's words, the description's when the title is undecided, else 'other'."""
    for text in (title, description[:DESCRIPTION_CHARS_READ]):
        language = winning_language(language_votes(text))
        if language is not None:
            return language
    return "other"


def cleaned_profile(title: str, description: str, description_missing: bool, has_image: bool) -> dict:
    """The profile of text already cleaned (the pipeline's tables): title length, flags, language."""
    return {
        "title_length": len(title),
        "description_missing": bool(description_missing),
        "image_missing": not bool(has_image),
        "language": detect_language(title, description),
    }


def input_profile(designation: str, description: str | None, has_image: bool) -> dict:
    """Title length, missing description/image flags and language of one raw product (no raw text)."""
    return cleaned_profile(clean_text(designation), clean_text(description), is_missing(description), has_image)
