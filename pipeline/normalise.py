"""Normalise: NFC, whitespace, mojibake, æ/ø/å repair, language, and duplicates.

The verbatim `text` is kept; `text_norm` is what later stages embed, label and quote.
Exact and near duplicates point at the first card of their group (`duplicate_of`); all
copies stay, so counts can say how many distinct voices said a thing.
"""
from __future__ import annotations

import logging
import re
import sys
import unicodedata
from pathlib import Path

import ftfy
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import language, near_duplicates, repair
from pipeline.language import Detected, detect_language
from pipeline.params import NormaliseParams
from pipeline.repair import RepairSettings, join_hyphen_breaks  # noqa: F401  (public API of this stage)
from pipeline.memo import TextMemo, text_key, version_digest
from pipeline.near_duplicates import SIGNATURE_SIZE, near_pairs, signatures
from pipeline.records import CARDS, NORMALISED, STATUS_OK, read_table, write_table

log = logging.getLogger(__name__)
PARALLEL_MIN_TEXTS = 1000  # below this many new texts per worker, starting workers costs more than it saves
# Per-text results kept between runs (see pipeline/memo.py).
MEMO = pa.schema([("key", pa.string()), ("text_norm", pa.string()), ("language", pa.string()),
                  ("language_confidence", pa.float64()), ("signature", pa.list_(pa.uint64()))])

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


def find_duplicates(keys: list[str], threshold: float,
                    signature: np.ndarray | None = None) -> list[tuple[int, str] | None]:
    """For each text, (index of the first text it duplicates, "exact" | "near"), or None.

    Near: cosine of binary character 3-5-gram vectors at least `threshold`, found through
    MinHash bands (pipeline/near_duplicates.py); `signature` holds the texts' MinHash
    signatures when already known. Groups are closed transitively.
    """
    from scipy.sparse.csgraph import connected_components

    n = len(keys)
    if n == 0:
        return []
    first, second = near_pairs(keys, threshold, signature)
    rows, cols = first.tolist(), second.tolist()
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


def _normalise_all(texts: list[str], params: NormaliseParams) -> list[tuple[str, Detected]]:
    """`normalise_text` over many texts; large batches are spread over all cores (forked workers
    share the loaded language models). Order is kept, so the result does not depend on the workers."""
    import multiprocessing
    import os

    workers = min(os.cpu_count() or 1, len(texts) // PARALLEL_MIN_TEXTS)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [normalise_text(text, params) for text in texts]
    language.load_detector()  # before forking, so the workers inherit it instead of loading it again
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.starmap(normalise_text, [(text, params) for text in texts], chunksize=256)


def normalise_texts(texts: list[str], params: NormaliseParams, known: pd.DataFrame | None = None):
    """(text_norm, language, confidence, MinHash signature) per text, and the rows computed now (for the memo).

    `known` holds earlier results indexed by `memo.text_key(text)`: only other texts are computed.
    """
    known = known if known is not None else pd.DataFrame(columns=MEMO.names[1:])
    keys = [text_key(t) for t in texts]
    todo = {key: text for key, text in zip(keys, texts) if key not in known.index}
    pending = sorted(todo.items())
    computed = [(key, text_norm, detected.code, detected.confidence)
                for (key, _), (text_norm, detected) in zip(pending, _normalise_all([t for _, t in pending], params))]
    new_rows = pd.DataFrame(computed, columns=MEMO.names[:-1])
    new_rows["signature"] = list(signatures([duplicate_key(t) for t in new_rows["text_norm"]])) if computed else []
    results = pd.concat([known, new_rows.set_index("key")]) if computed else known
    return results.loc[keys].reset_index(drop=True), new_rows


def normalise(cards: pd.DataFrame, params: NormaliseParams, results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Normalised cards; `results` are the cards' `normalise_texts` rows when already computed."""
    out = cards.copy()
    if results is None:
        results, _ = normalise_texts(out["text"].tolist(), params)
    out["text_norm"] = results["text_norm"].tolist()
    out["language"] = results["language"].tolist()
    out["language_confidence"] = results["language_confidence"].astype(float).tolist()
    out["duplicate_of"] = None
    out["duplicate_kind"] = None
    live = np.flatnonzero((out["status"] == STATUS_OK).to_numpy())
    signature = np.array(results["signature"].iloc[live].tolist(), dtype=np.uint64).reshape(len(live), SIGNATURE_SIZE)
    found = find_duplicates([duplicate_key(out["text_norm"].iat[i]) for i in live], params.near_duplicate_threshold,
                            signature)
    for position, hit in zip(live, found):
        if hit is not None:
            first, kind = hit
            out.iat[position, out.columns.get_loc("duplicate_of")] = out["card_id"].iat[live[first]]
            out.iat[position, out.columns.get_loc("duplicate_kind")] = kind
    return out


def text_memo(cache_dir: Path, params: NormaliseParams) -> TextMemo:
    """Results depend on the params, this stage's code and the word and language data."""
    version_id = version_digest(params=params.model_dump(mode="json"),
                                modules=(sys.modules[__name__], repair, language, near_duplicates),
                                packages=("wordfreq", "lingua-language-detector", "ftfy", "scikit-learn"))
    return TextMemo(cache_dir, "normalise", version_id, MEMO)


def run(*, cards_path: Path, out_dir: Path, params: NormaliseParams, cache_dir: Path | None = None) -> pd.DataFrame:
    """`cache_dir`: where per-text results are kept between runs (None: compute every text)."""
    cards = read_table(cards_path, CARDS)
    memo = text_memo(cache_dir, params) if cache_dir is not None else None
    results, new_rows = normalise_texts(cards["text"].tolist(), params, memo.load() if memo else None)
    result = normalise(cards, params, results)
    if memo:
        memo.add(new_rows)
    log.info("normalise: %d cards, %d texts normalised, %d reused from cache", len(result), len(new_rows),
             len(result) - len(new_rows))
    write_table(result, NORMALISED, out_dir / "cards.parquet")
    return result
