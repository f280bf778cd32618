"""Normalise: NFC, whitespace, mojibake, a first æ/ø/å repair, and exact-duplicate marking.

The verbatim `text` is kept; `text_norm` is what later stages embed and label.
"""
from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import ftfy
import pandas as pd
from wordfreq import zipf_frequency

from pipeline.params import NormaliseParams
from pipeline.records import CARDS, NORMALISED, STATUS_OK, read_table, write_table

# OCR and keyboard confusions seen in real transcriptions: (damaged form, Norwegian letter).
CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("aa", "å"), ("oe", "ø"), ("ae", "æ"), ("ee", "æ"),
    ("o", "ø"), ("g", "ø"), ("e", "ø"), ("0", "ø"),
    ("a", "å"), ("d", "å"),
    ("e", "æ"), ("z", "æ"),
)
MAX_EDITS = 2
# A word that is itself common is only replaced when the repair is far more common ("pa" -> "på").
AMBIGUITY_MARGIN = 2.5

SUSPENSIVE_TAILS = frozenset({"og", "eller", "samt", "til", "som"})

_WORD = re.compile(r"[^\W\d_][^\W_]*", re.UNICODE)
_HYPHEN_BREAK = re.compile(r"([^\W\d_]{2,})-\s+([a-zæøå][^\W\d_]+)")
_SPACES = re.compile(r"[ \t\r\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")  # zero-width and soft hyphen: not word breaks


@lru_cache(maxsize=200_000)
def zipf(word: str) -> float:
    return zipf_frequency(word, "nb")


def candidates(word: str) -> set[str]:
    """Every form reachable by up to MAX_EDITS confusion substitutions or one lost letter."""
    found: set[str] = set()
    frontier = {word}
    for _ in range(MAX_EDITS):
        next_frontier = set()
        for form in frontier:
            for damaged, letter in CONFUSIONS:
                start = form.find(damaged)
                while start != -1:
                    next_frontier.add(form[:start] + letter + form[start + len(damaged):])
                    start = form.find(damaged, start + 1)
        found |= next_frontier
        frontier = next_frontier
    for position, letter in itertools.product(range(1, len(word)), "æøå"):
        found.add(word[:position] + letter + word[position:])
    found.discard(word)
    return found


@lru_cache(maxsize=100_000)
def repair_word(word: str, min_repair_zipf: float = 2.5, max_source_zipf: float = 1.5) -> str:
    lower = word.lower()
    if len(lower) < 2:
        return word
    original = zipf(lower)
    best = max(candidates(lower), key=lambda c: (zipf(c), c), default=lower)
    best_zipf = zipf(best)
    unknown_and_fixable = original < max_source_zipf and best_zipf >= min_repair_zipf
    far_more_common = best_zipf - original >= AMBIGUITY_MARGIN and best_zipf >= min_repair_zipf
    if not (unknown_and_fixable or far_more_common):
        return word
    return _match_case(word, best)


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word


def join_hyphen_breaks(text: str) -> str:
    """'innbygger- involvering' -> 'innbyggerinvolvering' when the joined word is a word."""

    def join(match: re.Match) -> str:
        head, tail = match.group(1), match.group(2)
        joined = head + tail
        # A compound is often rarer than its parts; "helse- og omsorg" keeps its hyphen.
        is_compound = zipf(head.lower()) >= 2.5 and zipf(tail) >= 2.5 and tail not in SUSPENSIVE_TAILS
        return joined if zipf(joined.lower()) > 0 or is_compound else match.group(0)

    return _HYPHEN_BREAK.sub(join, text)


def repair_text(text: str, params: NormaliseParams | None = None) -> str:
    """Repair lost or misread æ/ø/å, keeping case and punctuation."""
    params = params or NormaliseParams()
    text = ftfy.fix_encoding(text)  # UTF-8 read as cp1252 ("Ã¸" -> "ø")
    text = join_hyphen_breaks(text)
    return _WORD.sub(
        lambda m: repair_word(m.group(0), params.min_repair_zipf, params.max_source_zipf), text
    )


def clean_text(text: str) -> str:
    text = ftfy.fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    return text.strip()


def normalise_text(text: str, params: NormaliseParams) -> str:
    text = clean_text(text)
    return repair_text(text, params) if params.repair_letters else text


def duplicate_key(text_norm: str) -> str:
    return re.sub(r"[\W_]+", " ", text_norm.casefold()).strip()


def normalise(cards: pd.DataFrame, params: NormaliseParams) -> pd.DataFrame:
    out = cards.copy()
    out["text_norm"] = [normalise_text(t, params) for t in out["text"]]
    first_by_key: dict[str, str] = {}
    duplicate_of: list[str | None] = []
    for card_id, status, text_norm in zip(out["card_id"], out["status"], out["text_norm"]):
        if status != STATUS_OK:
            duplicate_of.append(None)
            continue
        key = duplicate_key(text_norm)
        if key in first_by_key:
            duplicate_of.append(first_by_key[key])
        else:
            first_by_key[key] = card_id
            duplicate_of.append(None)
    out["duplicate_of"] = duplicate_of
    return out


def run(*, cards_path: Path, out_dir: Path, params: NormaliseParams) -> pd.DataFrame:
    cards = read_table(cards_path, CARDS)
    result = normalise(cards, params)
    write_table(result, NORMALISED, out_dir / "cards.parquet")
    return result
