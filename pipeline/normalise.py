"""Normalise: NFC, whitespace, mojibake, æ/ø/å repair, language, and duplicates.

The verbatim `text` is kept; `text_norm` is what later stages embed, label and quote.
Exact and near duplicates point at the first card of their group (`duplicate_of`); all
copies stay, so counts can say how many distinct voices said a thing.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import ftfy
import numpy as np
import pandas as pd

from pipeline import repair
from pipeline.language import Detected, detect_language
from pipeline.params import NormaliseParams
from pipeline.repair import RepairSettings, join_hyphen_breaks  # noqa: F401  (public API of this stage)
from pipeline.records import CARDS, NORMALISED, STATUS_OK, read_table, write_table

NEAR_DUPLICATE_CHUNK = 2048  # rows per sparse similarity block: bounds memory on large corpora
_SPACES = re.compile(r"[ \t\r\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")  # zero-width and soft hyphen: not word breaks


def repair_settings(params: NormaliseParams) -> RepairSettings:
    return RepairSettings(
        min_repair_zipf=params.min_repair_zipf,
        max_source_zipf=params.max_source_zipf,
        ambiguity_margin=params.ambiguity_margin,
        context_margin=params.context_margin,
    )


def repair_text(text: str, params: NormaliseParams | None = None, language: str | None = None) -> str:
    """Repair lost or misread æ/ø/å ("lgsninger" -> "løsninger"), keeping case and punctuation.

    Nynorsk text (given as `language="nn"` or detected) is not turned into bokmål.
    """
    return repair.repair_text(text, repair_settings(params or NormaliseParams()), language)


def clean_text(text: str) -> str:
    text = ftfy.fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    return text.strip()


def normalise_text(text: str, params: NormaliseParams) -> tuple[str, Detected]:
    """Clean and repaired text, and its language (detected before and after repair)."""
    text = clean_text(text)
    if params.repair_letters:
        text = repair_text(text, params)
    return text, detect_language(text)


def duplicate_key(text_norm: str) -> str:
    return re.sub(r"[\W_]+", " ", text_norm.casefold()).strip()


def find_duplicates(keys: list[str], threshold: float) -> list[tuple[int, str] | None]:
    """For each text, (index of the first text it duplicates, "exact" | "near"), or None.

    Near: cosine of binary character 3-5-gram vectors. Hashed features keep the similarity
    of two cards independent of the rest of the corpus, so adding a workshop changes no pair.
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import HashingVectorizer

    n = len(keys)
    if n == 0:
        return []
    vectors = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), binary=True, alternate_sign=False,
                                n_features=2**20).transform(keys)
    rows, cols = [], []
    for start in range(0, n, NEAR_DUPLICATE_CHUNK):
        block = (vectors[start:start + NEAR_DUPLICATE_CHUNK] @ vectors.T).tocoo()
        keep = (block.data >= threshold) & (block.row + start < block.col)
        rows.extend(block.row[keep] + start)
        cols.extend(block.col[keep])
    same_key = {}
    for i, key in enumerate(keys):
        if key in same_key:
            rows.append(same_key[key])
            cols.append(i)
        same_key.setdefault(key, i)
    from scipy.sparse import coo_matrix

    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first_in = {}
    result: list[tuple[int, str] | None] = []
    for i, c in enumerate(component):
        first = first_in.setdefault(c, i)
        result.append(None if first == i else (first, "exact" if keys[first] == keys[i] else "near"))
    return result


def normalise(cards: pd.DataFrame, params: NormaliseParams) -> pd.DataFrame:
    out = cards.copy()
    normalised = [normalise_text(t, params) for t in out["text"]]
    out["text_norm"] = [text for text, _ in normalised]
    out["language"] = [lang.code for _, lang in normalised]
    out["language_confidence"] = [lang.confidence for _, lang in normalised]
    out["duplicate_of"] = None
    out["duplicate_kind"] = None
    live = np.flatnonzero((out["status"] == STATUS_OK).to_numpy())
    found = find_duplicates([duplicate_key(out["text_norm"].iat[i]) for i in live], params.near_duplicate_threshold)
    for position, hit in zip(live, found):
        if hit is not None:
            first, kind = hit
            out.iat[position, out.columns.get_loc("duplicate_of")] = out["card_id"].iat[live[first]]
            out.iat[position, out.columns.get_loc("duplicate_kind")] = kind
    return out


def run(*, cards_path: Path, out_dir: Path, params: NormaliseParams) -> pd.DataFrame:
    cards = read_table(cards_path, CARDS)
    result = normalise(cards, params)
    write_table(result, NORMALISED, out_dir / "cards.parquet")
    return result
