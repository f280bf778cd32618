"""The Excel review round-trip on the devset, with the gold labels playing the analyst.

`innsikt review export` from a devset run; the verdict column is filled from gold (the machine's
theme right: `ok`; wrong: the gold theme from the drop-down; gold emergent: `emergent`; junk:
`ekskluder`); `innsikt review import` writes the labels and curation files; the map stage runs
again with them. Prints category accuracy before and after, over all non-junk cards and over the
cards that were not in the sheet.

    innsikt run --input ../shared/data/devset/cards.csv ../shared/data/devset/votes.csv --out /tmp/devset
    python bench/review_roundtrip.py --run-dir /tmp/devset [--size 20]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.evaluate import JUNK, load_gold, score  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.records import CARD_MAP, CLUSTER_ASSIGNMENTS, read_table  # noqa: E402
from pipeline.review_sheet import CHOICES_SHEET, HEADERS, SHEET, choice_text  # noqa: E402
from pipeline.taxonomy import EMERGENT, load_taxonomy  # noqa: E402


def fill_from_gold(sheet_path: Path, gold, names: dict[str, str]) -> dict[str, int]:
    """Write a verdict in every row, as an analyst who knows the gold labels would; count the kinds."""
    from openpyxl import load_workbook

    workbook = load_workbook(sheet_path)
    sheet = workbook[SHEET]
    header = [c.value for c in sheet[1]]
    card_col, theme_col = header.index(HEADERS["card_id"]) + 1, header.index(HEADERS["taxonomy_theme_id"]) + 1
    verdict_col = header.index(HEADERS["verdict"]) + 1
    counts = {}
    for row in range(2, sheet.max_row + 1):
        card, machine = sheet.cell(row, card_col).value, sheet.cell(row, theme_col).value
        category, theme = gold.loc[card, "category_id"], gold.loc[card, "theme_id"]
        if category == JUNK:
            verdict = "ekskluder"
        elif category == EMERGENT:
            verdict = "ok" if machine is None else "emergent"
        else:
            verdict = "ok" if machine == theme else choice_text(theme, names[theme])
        kind = verdict if verdict in ("ok", "emergent", "ekskluder") else "other theme"
        counts[kind] = counts.get(kind, 0) + 1
        sheet.cell(row, verdict_col).value = verdict
    assert CHOICES_SHEET in workbook.sheetnames
    workbook.save(sheet_path)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/devset"))
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "data" / "devset" / "cards.csv")
    parser.add_argument("--size", type=int, default=load_params(ROOT / "configs" / "params.yaml").report.review_size)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    args = parser.parse_args()
    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    names = {t.id: t.name for t in taxonomy.themes}
    gold = load_gold(args.gold)
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    assignments = read_table(args.run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    innsikt = [sys.executable, "-m", "pipeline.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sheet, labels, curation = tmp / "review.xlsx", tmp / "labels.csv", tmp / "curation.yaml"
        subprocess.run([*innsikt, "review", "export", "--run-dir", str(args.run_dir), "--out", str(sheet),
                        "--size", str(args.size)], check=True, cwd=ROOT)
        counts = fill_from_gold(sheet, gold.set_index("card_id"), names)
        subprocess.run([*innsikt, "review", "import", str(sheet), "--labels", str(labels), "--curation",
                        str(curation)], check=True, cwd=ROOT)
        after_dir = tmp / "map"
        subprocess.run([*innsikt, "-q", "map", "--cards", str(args.run_dir / "normalise" / "cards.parquet"),
                        "--embeddings", str(args.run_dir / "embed" / "embeddings.parquet"),
                        "--clusters", str(args.run_dir / "cluster"), "--labels", str(labels),
                        "--curation", str(curation), "--cache-dir", str(args.cache_dir.resolve()),
                        "--out", str(after_dir)], check=True, cwd=ROOT)
        before = read_table(args.run_dir / "map" / "cards.parquet", CARD_MAP)
        after = read_table(after_dir / "cards.parquet", CARD_MAP)
        labelled, excluded = read_table_ids(labels), _excluded(curation)
        reviewed = set(labelled) | set(excluded)
        shutil.rmtree(after_dir)
    rest = gold[~gold["card_id"].isin(reviewed)]
    print(f"sheet: {args.size} cards; verdicts {counts}; {len(labelled)} labels, {len(excluded)} exclude rules\n")
    print("| category accuracy | before | after |")
    print("| --- | --- | --- |")
    for title, subset in (("all non-junk cards", gold), ("the cards not in the sheet", rest)):
        b = score(before, assignments, subset, theme_category)
        a = score(after, assignments, subset, theme_category)
        print(f"| {title} ({a['cards']}) | {b['category_accuracy']:.3f} | {a['category_accuracy']:.3f} |")


def read_table_ids(labels: Path) -> list[str]:
    import pandas as pd

    return pd.read_csv(labels, dtype=str)["card_id"].tolist() if labels.exists() else []


def _excluded(curation: Path) -> list[str]:
    from pipeline.curation import load_curation

    return [r.body.card for r in load_curation(curation).rules if r.kind == "exclude"]


if __name__ == "__main__":
    main()
