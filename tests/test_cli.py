from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.records import CARDS, VOTES, read_table

runner = CliRunner()


def test_help_lists_every_stage_and_run():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "normalise", "embed", "cluster", "map", "report", "run"):
        assert command in result.output


def test_ingest_takes_several_inputs_after_one_flag(small_corpus, tmp_path):
    result = runner.invoke(app, ["ingest", "--input", str(small_corpus / "ws-alta.csv"),
                                 str(small_corpus / "votes.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(read_table(tmp_path / "cards.parquet", CARDS)) == 18
    assert len(read_table(tmp_path / "votes.parquet", VOTES)) == 11


def test_bad_input_is_one_line_naming_the_file_and_exit_code_1(tmp_path):
    bad = tmp_path / "cards.csv"
    bad.write_text("card_id,comment\n1,hei\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", "--input", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cards.csv" in lines[0] and "no text column" in lines[0]
    assert "Traceback" not in result.output


def test_unknown_params_key_is_named(tmp_path, small_corpus):
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  min_leters: 2\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", "--input", str(small_corpus), "--out", str(tmp_path / "o"),
                                 "--params", str(params)])
    assert result.exit_code == 1 and "ingest.min_leters" in result.output
