"""Smoke test: the real `dvc repro` in a temporary git repository, on the small fixture corpus."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    params.write_text(params.read_text(encoding="utf-8").replace("  steps: 100 ", "  steps: 3 ")
                      .replace("  enabled: false ", "  enabled: true "), encoding="utf-8")
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
