import pytest
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


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"innsikt {version('innsikt')}"


def _help_text(args) -> str:
    """Help as a reader sees it: box drawing and line wrapping removed."""
    result = runner.invoke(app, args, terminal_width=100)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def test_help_texts_render_their_defaults():
    run_help = _help_text(["run", "--help"])
    assert "Theme registry: the previous run's themes, then this run's (default: OUT/models/themes.json)." in run_help
    assert "(default: configs/params.yaml when present, else the packaged default params.yaml)" in run_help
    assert "(default: RUN_DIR/export)" in _help_text(["export", "--help"])
    top = _help_text(["--help"])
    for option in ("--version", "--verbose", "-v", "--quiet", "-q"):
        assert option in top
    assert "export" in top


def test_every_option_help_renders_whole():
    """Rich reads [text] as markup and drops it: every help text must reach the screen as written."""
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        shown = _help_text([name, "--help"])
        for param in command.params:
            if getattr(param, "help", None):
                assert " ".join(param.help.split()) in shown, (name, param.name)


def test_verbose_and_quiet_set_the_log_level(tmp_path):
    """-q leaves only warnings and errors; the default logs progress; -v adds debug lines."""
    import os
    import subprocess
    import sys

    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    bad = tmp_path / "cards.csv"
    bad.write_text("card_id,text\n1,Vi må dele data på tvers\n", encoding="utf-8")

    def ingest(*flags):
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *flags, "ingest", "--input", str(bad),
                               "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")],
                              cwd=repo, env=env, capture_output=True, text=True, check=True).stderr

    normal, quiet, verbose = ingest(), ingest("-q"), ingest("-v")
    assert "innsikt: ingest: 1 cards" in normal and "warning: " in normal  # a workshop of 1 card
    assert "innsikt: ingest:" not in quiet and "warning: " in quiet
    assert "innsikt: params.yaml: configs/params.yaml" in verbose and "params.yaml: " not in normal
    assert "innsikt: ingest: 1 cards" in verbose
    assert "-v or -q" in subprocess.run([sys.executable, "-m", "pipeline.cli", "-v", "-q", "ingest"], cwd=repo,
                                        env=env, capture_output=True, text=True).stderr


def test_packaged_default_configs_are_the_repository_configs():
    """One source of truth: pipeline/defaults/ (used outside a clone) holds the files of configs/."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for name in ("params.yaml", "taxonomy.yaml", "codebook.yaml", "curation.yaml"):
        assert (repo / "pipeline" / "defaults" / name).read_bytes() == (repo / "configs" / name).read_bytes(), (
            f"pipeline/defaults/{name} differs from configs/{name}: cp configs/{name} pipeline/defaults/{name}")


def test_the_cli_picks_the_packaged_configs_only_outside_a_clone(tmp_path, monkeypatch):
    from pathlib import Path

    from pipeline.cli import DEFAULTS_DIR, config_path

    monkeypatch.chdir(tmp_path)
    assert config_path(Path("configs/params.yaml"), "params.yaml") == DEFAULTS_DIR / "params.yaml"
    assert config_path(Path("mine.yaml"), "params.yaml") == Path("mine.yaml")  # a file named by the user: kept
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "params.yaml").write_text("map:\n  top_k: 4\n", encoding="utf-8")
    assert config_path(Path("configs/params.yaml"), "params.yaml") == Path("configs/params.yaml")


@pytest.mark.slow
def test_innsikt_run_works_from_an_empty_folder_outside_the_repository(run_outside_repo):
    """The fixture runs `innsikt run --input CORPUS --out out` in an empty temporary folder: packaged
    configs, and nothing written but the outputs and the cache."""
    import json

    insights = json.loads((run_outside_repo / "report" / "insights.json").read_text(encoding="utf-8"))
    assert insights["run"]["counts"]["cards"] == 39 + 5
    assert insights["taxonomy"]["id"] == "kmd-innovasjon-offentlig-sektor" and insights["themes"]
    assert (run_outside_repo / "report" / "report.html").is_file()


@pytest.mark.parametrize("error, code", [("innsikt", 1), ("bug", None)])
def test_an_innsikt_error_is_one_line_and_any_other_error_keeps_its_traceback(tmp_path, monkeypatch, error, code):
    from pipeline import export as export_stage
    from pipeline.errors import InnsiktError

    class StageError(InnsiktError):
        pass

    def failing(**kwargs):
        raise StageError("run/x.parquet, row 3: broken\nsecond line") if error == "innsikt" else RuntimeError("bug")

    monkeypatch.setattr(export_stage, "run", failing)
    result = runner.invoke(app, ["export", "--run-dir", str(tmp_path)])
    if code == 1:
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == ["innsikt: error: run/x.parquet, row 3: broken second line"]
    else:
        assert isinstance(result.exception, RuntimeError)


def test_params_prints_the_params_in_effect_or_the_readme_table(tmp_path):
    import yaml

    from pipeline.params import params_markdown

    (tmp_path / "params.yaml").write_text("map:\n  top_k: 5\n", encoding="utf-8")
    shown = runner.invoke(app, ["params", "--params", str(tmp_path / "params.yaml")])
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.output)["map"]["top_k"] == 5
    table = runner.invoke(app, ["params", "--markdown"])
    assert table.exit_code == 0 and table.output == params_markdown()
