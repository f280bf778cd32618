"""Normalisation checks on the labelled devset: personal data, junk, duplicates, language.

    python bench/devset_check.py [--devset ../shared/data/devset] [--out DIR]

Runs the whole pipeline on the devset cards and votes, then checks every file under the
outputs (text, JSON, HTML, Parquet columns, model files) for the phone numbers, e-mail
addresses and identity numbers of the cards marked `has_pii`; checks that the junk cards are
rejected, that the exact duplicate pairs are found, and tabulates detected language against
the devset's noise labels. Prints a table and exits 1 when a check fails.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipeline.cli import run_all
from pipeline.params import load_params

REPO = Path(__file__).resolve().parents[1]
PII_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+?\d[\d ]{6,}\d")


def pii_strings(text: str) -> set[str]:
    """The personal data in a card, and its digits without spaces (as a leak might print them)."""
    found = set()
    for match in PII_PATTERN.findall(text):
        found.add(match.strip())
        found.add(re.sub(r"\s", "", match))
    return found


def file_texts(out: Path):
    """(path, searchable text) for every file under the outputs."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            yield path, "\n".join(str(v) for column in table.columns for v in column.to_pylist())
        else:
            yield path, path.read_bytes().decode("utf-8", errors="replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=REPO.parent / "shared" / "data" / "devset")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    gold = pd.read_csv(args.devset / "cards.csv", keep_default_na=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "out"
        insights = run_all(inputs=[args.devset / "cards.csv", args.devset / "votes.csv"], out=out,
                           params=load_params(REPO / "configs" / "params.yaml"),
                           taxonomy=REPO / "configs" / "taxonomy.yaml", cache_dir=REPO / ".cache" / "embeddings")
        secrets = set().union(*(pii_strings(t) for t in gold.loc[gold["has_pii"].astype(str).str.lower() == "true", "text"]))
        leaks = [(path.relative_to(out), s) for path, text in file_texts(out) for s in secrets if s in text]
        n_files = sum(1 for p in out.rglob("*") if p.is_file())
    cards = pd.DataFrame(insights["cards"]).set_index("card_id")
    junk = gold.loc[gold["category_id"] == "junk", "card_id"]
    junk_rejected = (cards.loc[junk, "status"] == "rejected").all()
    texts = gold.set_index("card_id")["text"]
    gold_pairs = {tuple(sorted(g)) for _, g in gold.groupby("text")["card_id"] if len(g) > 1}
    exact = cards[cards["duplicate_kind"] == "exact"]
    found_pairs = {tuple(sorted((cid, row["duplicate_of"]))) for cid, row in exact.iterrows()}
    near = cards[cards["duplicate_kind"] == "near"]

    print(f"devset: {len(gold)} cards; outputs: {n_files} files")
    print(f"redactions reported: {insights['run']['redactions']}")
    print(f"personal data strings searched: {len(secrets)}; leaks: {len(leaks)} {leaks[:5]}")
    print(f"junk cards rejected: {int((cards.loc[junk, 'status'] == 'rejected').sum())}/{len(junk)} "
          f"({'; '.join(str(cards.loc[c, 'reason']) for c in junk)})")
    print(f"exact duplicate pairs: found {len(found_pairs)}, gold {len(gold_pairs)}, "
          f"matching {len(found_pairs & gold_pairs)}")
    for cid, row in near.iterrows():
        print(f"  near duplicate: {cid} ~ {row['duplicate_of']}: {texts[cid]!r} ~ {texts[row['duplicate_of']]!r}")
    languages = pd.crosstab(gold.set_index("card_id")["noise"], cards["language"].fillna("rejected"))
    print("language by devset noise label:\n" + languages.to_string())
    ok = not leaks and junk_rejected and found_pairs == gold_pairs
    print("CHECKS:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
