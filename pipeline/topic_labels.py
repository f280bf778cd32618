"""Theme keywords and labels in readable Norwegian: lemmatised key words and key phrases.

BERTopic's c-TF-IDF ranks the terms that `TermAnalyzer` gives it:
- words in their dictionary form (lemma), so "budsjettene" and "budsjett" are one term;
- key phrases, an adjective before a noun ("ettårig budsjett", "felles mål").
Stop words, adverbs, light verbs ("gjøre", "burde") and transcription debris ("smä", a misread
word on one card) are no terms. The lexicon is bokmål (`pipeline.norwegian.reading`); a word it
lacks is a term when it is a compound of known words, common in Norwegian text (wordfreq), or
written on two cards or more (nynorsk and new words, not one-off misreadings).

A label names a theme by its first keywords, each different in meaning from those before; a
word shows in its dictionary form ("silo"), a phrase as the cards most often write it
("ettårige budsjetter").
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from pipeline.norwegian import GENERIC_ADJECTIVES, LIGHT_VERBS, compound_reading, reading, readings, stop_words

log = logging.getLogger(__name__)

# Words, and the punctuation between them: a key phrase never spans a comma or a full stop.
_TOKENS = re.compile(r"[^\W\d_]{2,}|[^\w\s]|\d+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_NORWEGIAN_LETTERS = re.compile(r"[a-zæøåé]+")
COMMON_ZIPF = 2.5  # a word the lexicon lacks is a term when this common in Norwegian text (wordfreq)
MIN_UNKNOWN_LETTERS = 3  # shorter words the lexicon lacks are abbreviations ("mv" for "med videre")
ENGLISH_MARGIN = 1.5  # zipf units by which an unknown word is commoner in English: not a term
# A key phrase is an adjective before a noun. Two nouns side by side are two phrases in
# Norwegian ("setningen kommunen"): compounds are written as one word.
PHRASE_HEADS = ("noun",)
PHRASE_MODIFIERS = ("adj",)


@dataclass(frozen=True)
class Word:
    lemma: str
    word_class: str  # noun | adj | verb | unknown (not in the lexicon)
    alone: bool  # a keyword by itself, not only inside a phrase ("felles" is not)


@lru_cache(maxsize=200_000)
def _known_word(token: str) -> Word | None:
    if token in stop_words():
        return None
    if any(word_class == "verb" and lemma in LIGHT_VERBS for word_class, lemma in readings(token)):
        return None  # "gir" is the verb "gi" far more often than the noun "gir"
    found = reading(token) or compound_reading(token)
    if found is None:
        return None
    word_class, lemma = found
    if lemma in stop_words() or word_class == "adv":
        return None
    return Word(lemma, word_class, alone=not (word_class == "adj" and lemma in GENERIC_ADJECTIVES))


@lru_cache(maxsize=200_000)
def _is_common(token: str) -> bool:
    from wordfreq import zipf_frequency

    return zipf_frequency(token, "nb") >= COMMON_ZIPF


@lru_cache(maxsize=200_000)
def _is_english(token: str) -> bool:
    """Far commoner in English than in Norwegian ("fail", "thinking"): a label should not show it."""
    from wordfreq import zipf_frequency

    return zipf_frequency(token, "en") - zipf_frequency(token, "nb") > ENGLISH_MARGIN


def attested_words(docs: list[str]) -> frozenset[str]:
    """Lower-case words written on at least two of `docs`."""
    counts = Counter(word for doc in docs for word in set(_WORD.findall(doc.lower())))
    return frozenset(word for word, n in counts.items() if n >= 2)


class TermAnalyzer:
    """CountVectorizer analyzer: the terms of a text (see the module docstring).

    `attested`: words written on two cards or more of the corpus (`attested_words`).
    `max_words`: 1 for words only, 2 to add two-word key phrases.
    `lenient`: every word but stop words is a term, for a corpus where the rules leave none.
    """

    def __init__(self, attested: frozenset[str] = frozenset(), max_words: int = 2, lenient: bool = False):
        self.attested = attested
        self.max_words = max_words
        self.lenient = lenient

    def word(self, token: str) -> Word | None:
        known = _known_word(token)
        if known is not None or token in stop_words():
            return known
        lenient = Word(token, "unknown", alone=True) if self.lenient else None
        if reading(token) is not None:
            return lenient  # a function word, adverb or light verb
        if not _NORWEGIAN_LETTERS.fullmatch(token) or _is_english(token):
            return lenient  # misread letters ("smä"), or an English word on a mixed card
        if len(token) < MIN_UNKNOWN_LETTERS:
            return lenient  # an abbreviation ("mv", "bl"), not a word a person names a theme by
        if not (token in self.attested or _is_common(token)):
            return lenient
        return Word(token, "unknown", alone=True)

    def terms_with_surface(self, text: str) -> list[tuple[str, str, str]]:
        """(term, its words as written, word class or "phrase") for every term of `text`, in order."""
        out: list[tuple[str, str, str]] = []
        previous: tuple[Word, str] | None = None
        for token in _TOKENS.findall(text.lower()):
            word = self.word(token) if _WORD.fullmatch(token) else None
            if word is None:
                previous = None
                continue
            if word.alone:
                out.append((word.lemma, token, word.word_class))
            if (self.max_words >= 2 and previous is not None and word.word_class in PHRASE_HEADS
                    and previous[0].word_class in PHRASE_MODIFIERS):
                out.append((f"{previous[0].lemma} {word.lemma}", f"{previous[1]} {token}", "phrase"))
            previous = (word, token)
        return out

    def __call__(self, text: str) -> list[str]:
        return [term for term, _, _ in self.terms_with_surface(text)]


def analyzer_for(docs: list[str], max_words: int) -> TermAnalyzer:
    """The analyzer for a corpus; lenient when its rules find no term in any card (say, cards
    of English words only), since c-TF-IDF needs at least one."""
    analyzer = TermAnalyzer(attested_words(docs), max_words)
    if any(analyzer(doc) for doc in docs):
        return analyzer
    log.warning("cluster: no Norwegian content word in any card; keywords are the words as written")
    return TermAnalyzer(analyzer.attested, max_words, lenient=True)


@dataclass
class Usage:
    """How a cluster's cards use one term."""
    word_class: str  # or "phrase"
    cards: int = 0  # cards that use it
    written: Counter = field(default_factory=Counter)  # as the cards write it


def usage_in(member_docs: list[str], analyzer: TermAnalyzer) -> dict[str, Usage]:
    """Term -> its use in a cluster's cards; one pass over the cards for ranking, labels and display."""
    usage: dict[str, Usage] = {}
    for doc in member_docs:
        seen = set()
        for term, surface, word_class in analyzer.terms_with_surface(doc):
            found = usage.setdefault(term, Usage(word_class))
            found.written[surface] += 1
            if term not in seen:
                seen.add(term)
                found.cards += 1
    return usage


def rank_keywords(candidates: list[str], usage: dict[str, Usage]) -> list[str]:
    """Order c-TF-IDF keywords by how many cards of the cluster use them; drop those no card uses.

    In small clusters every term occurs once, c-TF-IDF scores tie and BERTopic's order is
    alphabetical; the number of cards that say a term is what makes it representative. A term no
    single card holds is a phrase across two cards that BERTopic joined into one document.
    """
    used = [term for term in candidates if term in usage]
    return sorted(used, key=lambda term: -usage[term].cards)  # stable: c-TF-IDF order breaks ties


def shown(term: str, usage: dict[str, Usage]) -> str:
    """A keyword as shown: a word as its lemma, a phrase as the cluster's cards most often write it."""
    found = usage.get(term)
    if found is None or found.word_class != "phrase":
        return term
    return min(found.written, key=lambda form: (-found.written[form], len(form), form))


def _overlaps(lemma: str, used: set[str]) -> bool:
    """The same word, or a compound of it ("budsjettpost" after "budsjett")."""
    return any(lemma == other or (min(len(lemma), len(other)) >= 4 and (lemma.startswith(other) or
               other.startswith(lemma) or lemma.endswith(other) or other.endswith(lemma))) for other in used)


MAX_LABEL_WORDS = 5


def make_label(keywords: list[str], n_words: int, usage: dict[str, Usage]) -> str:
    """A short Norwegian phrase naming the theme: up to `n_words` of its keywords that say something
    new, nouns and phrases only (adjectives and verbs stay keywords), as shown and joined as a
    person would write them ("Budsjett, langsiktighet og finansiering", "Ettårige budsjetter og
    innovasjon"), at most MAX_LABEL_WORDS words. After the first two, a word joins only if two
    cards use it (when any word is used by two). Only when no keyword is a noun or a phrase is the
    first keyword the label."""
    naming_last = {"adj", "verb"}
    chosen: list[str] = []
    used: set[str] = set()
    words = 0
    # A word one card uses names that card, not the theme: past two words, only shared words extend the name.
    shared = max((found.cards for found in usage.values()), default=0) >= 2
    for keyword in keywords:
        if keyword in usage and usage[keyword].word_class in naming_last:
            continue
        if shared and len(chosen) >= 2 and keyword in usage and usage[keyword].cards < 2:
            continue
        if shared and keyword in usage and usage[keyword].word_class == "unknown" and usage[keyword].cards < 2:
            continue  # a word the lexicon lacks names the theme only in the wording of two of its cards
        lemmas = keyword.split()
        if any(_overlaps(lemma, used) for lemma in lemmas):
            continue
        if chosen and words + len(lemmas) + 1 > MAX_LABEL_WORDS:  # +1: the "og"
            break
        used.update(lemmas)
        chosen.append(shown(keyword, usage))
        words += len(lemmas)
        if len(chosen) == n_words:
            break
    if not chosen:
        chosen = [shown(keywords[0], usage)] if keywords else []
    if not chosen:
        return ""
    text = chosen[0] if len(chosen) == 1 else f"{', '.join(chosen[:-1])} og {chosen[-1]}"
    return text[:1].upper() + text[1:]
