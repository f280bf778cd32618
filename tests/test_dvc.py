"""Smoke test: the real `dvc repro` in a temporary git repository, on the small fixture corpus;
and a check that each stage's deps name all the code it runs."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def sh(args, cwd, env):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for item in ("dvc.yaml", "configs", "pipeline"):
        source = REPO / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / item)
    shutil.copytree(FIXTURES / "small_corpus", root / "corpora" / "demo")
    shutil.copy2(FIXTURES / "small_corpus_gold.csv", root / "configs" / "demo_gold.csv")
    params = root / "configs" / "params.yaml"  # a smoke test: the tune stage runs, briefly
    text = re.sub(r"^  steps: \d+ ", "  steps: 3 ", params.read_text(encoding="utf-8"), count=1, flags=re.M)
    params.write_text(text.replace("  enabled: false ", "  enabled: true "), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    sh(["git", "init", "-q"], root, env)
    dvc = [sys.executable, "-m", "dvc"]
    sh(dvc + ["init", "-q"], root, env)
    sh(dvc + ["config", "core.analytics", "false"], root, env)
    return root, env, dvc


def test_repro_builds_the_report_then_reruns_nothing_then_only_what_changed(project):
    root, env, dvc = project
    first = sh(dvc + ["repro"], root, env)
    insights = json.loads((root / "outputs" / "report" / "insights.json").read_text(encoding="utf-8"))
    assert insights["run"]["counts"]["cards"] == 39
    assert (root / "outputs" / "report" / "report.html").is_file()
    assert list((root / "models" / "bertopic").glob("*.safetensors"))
    assert "texts embedded" in first
    assert (root / "models" / "encoder" / "model.e5").is_file() and "tune: 3 steps" in first

    second = sh(dvc + ["repro"], root, env)
    assert "Running stage" not in second

    corpus = root / "corpora" / "demo" / "ws-alta.csv"
    corpus.write_text(corpus.read_text(encoding="utf-8").replace("Spør brukerne hva de faktisk trenger",
                                                                   "Spør brukerne hva de trenger i hverdagen"),
                      encoding="utf-8")
    third = sh(dvc + ["repro"], root, env)
    assert "37 cards, 1 texts embedded, 35 reused from cache" in third  # 36 distinct texts
    for stage in ("ingest", "normalise", "embed", "cluster", "map", "report"):
        assert f"Running stage '{stage}'" in third
    assert "Running stage 'tune'" not in third  # new cards do not retune (no labels in this pipeline)

    # Every stage imports records.py (directly or through other modules): an edit reruns them all.
    records = root / "pipeline" / "records.py"
    records.write_text(records.read_text(encoding="utf-8") + "\n# touched by the test\n", encoding="utf-8")
    fourth = sh(dvc + ["repro"], root, env)
    for stage in yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]:
        assert "pipeline/records.py" in import_closure_paths(stage)
        assert f"Running stage '{stage}'" in fourth


def _imported_modules(path: Path) -> set[str]:
    """pipeline/ modules one file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("pipeline."))
    return {name for name in found if (REPO / "pipeline" / f"{name}.py").is_file()}


def import_closure(module: str) -> set[str]:
    """The stage module and every pipeline/ module it imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imported_modules(REPO / "pipeline" / f"{name}.py"))
    return seen


def import_closure_paths(stage: str) -> set[str]:
    return {f"pipeline/{name}.py" for name in import_closure(stage)}


def test_every_stage_lists_every_pipeline_module_it_imports_as_a_dep():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    missing = {}
    for stage, spec in stages.items():
        listed = {dep for dep in spec["deps"] if dep.startswith("pipeline/")}
        needed = import_closure_paths(stage)
        if needed - listed:
            missing[stage] = sorted(needed - listed)
    assert not missing, f"dvc.yaml deps miss modules their stage imports: {missing}"


def test_dvc_plots_show_reads_the_plot_csvs_written_with_a_bom(project):
    root, env, dvc = project
    sh(dvc + ["repro"], root, env)  # nothing to do after the test above

    shown = json.loads(subprocess.run(dvc + ["plots", "show", "--json"], cwd=root, env=env, capture_output=True,
                                      text=True, timeout=300, check=True).stdout)

    assert not shown.get("errors")
    for name, field in (("categories_by_workshop", "category"), ("themes_by_breadth", "theme")):
        values = shown["data"][name][0]["content"]["data"]["values"]
        assert values and all(row[field] for row in values), name
    assert (root / "outputs" / "report" / "plots" / "categories.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_an_experiment_with_a_changed_param_reruns_only_what_depends_on_it(project):
    """`dvc exp run -S configs/params.yaml:map.top_k=5`, as the README shows: the params file is
    not DVC's default params.yaml, so the key names its file."""
    root, env, dvc = project
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "baseline"], root, env)
    out = sh(dvc + ["exp", "run", "-n", "top-k-5", "-S", "configs/params.yaml:map.top_k=5"], root, env)
    for stage in ("ingest", "normalise", "embed", "cluster"):
        assert f"Running stage '{stage}'" not in out
    for stage in ("map", "report", "evaluate"):
        assert f"Running stage '{stage}'" in out
    shown = json.loads(subprocess.run(dvc + ["exp", "show", "--json"], cwd=root, env=env, capture_output=True,
                                      text=True, check=True, timeout=300).stdout)
    experiments = {exp["name"]: exp["data"]["params"]["configs/params.yaml"]["data"]["map"]["top_k"]
                   for row in shown for group in (row.get("experiments") or []) for exp in group["revs"]}
    assert experiments == {"top-k-5": 5}
    sh(["git", "checkout", "--", "."], root, env)  # back to the baseline for the next test
    sh(dvc + ["checkout", "--force"], root, env)


def test_pointing_ingest_at_another_corpus_keeps_repro_green(project):
    """The evaluate stage's gold file has no card of the other corpus: it says so and writes null metrics."""
    root, env, dvc = project
    other = root / "corpora" / "other"
    other.mkdir()
    shutil.copy2(FIXTURES / "added_workshop" / "ws-sunndal.csv", other)
    pipeline = root / "dvc.yaml"
    pipeline.write_text(pipeline.read_text(encoding="utf-8").replace("corpora/demo", "corpora/other"), encoding="utf-8")
    out = sh(dvc + ["repro"], root, env)
    assert "evaluate: skipped: none of the card ids of configs/demo_gold.csv is in the run" in out
    metrics = json.loads((root / "outputs" / "evaluate" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["zero_shot"] is None and metrics["skipped"]
    insights = json.loads((root / "outputs" / "report" / "insights.json").read_text(encoding="utf-8"))
    assert {card["workshop_id"] for card in insights["cards"]} == {"ws-sunndal"}
