"""Shared fixtures: a deterministic fake embedder for unit tests of stages other than embed."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


class FakeEmbedder:
    """Hashed bag of words: texts sharing words get similar vectors. Not a language model."""

    model_id = "fake/hashed-words"

    def __init__(self, dim: int = 64):
        self.dim = dim

    def fit(self, texts=None, y=None) -> "FakeEmbedder":
        return self

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """A cache folder holding the bundled model's ONNX file (`e5-small-onnx`), exported once per test session."""
    from pipeline.embed import E5SmallOnnx

    cache = tmp_path_factory.mktemp("onnx-cache")
    E5SmallOnnx(cache_dir=cache).prepare()
    return cache


@pytest.fixture
def small_corpus() -> Path:
    return FIXTURES / "small_corpus"


def planted_clusters(n_clusters: int, per_cluster: int, dim: int = 32, noise: float = 0.05, n_outliers: int = 0,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around well-separated centres (label -1 for scattered outliers)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:n_clusters] * 3
    X = np.concatenate([c + noise * rng.standard_normal((per_cluster, dim)) for c in centres])
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    if n_outliers:
        X = np.concatenate([X, rng.standard_normal((n_outliers, dim))])
        labels = np.concatenate([labels, -np.ones(n_outliers, dtype=int)])
    return X.astype(np.float32), labels


def normalised_cards(texts, status=None, ids=None):
    """A normalise-stage table (all NORMALISED columns) for the given texts."""
    import pandas as pd

    n = len(texts)
    return pd.DataFrame(
        {
            "card_id": ids or [f"c{i}" for i in range(n)],
            "workshop_id": ["w"] * n,
            "group_id": [None] * n,
            "card_type": ["postit"] * n,
            "text": list(texts),
            "source_file": ["f.csv"] * n,
            "source_row": list(range(2, n + 2)),
            "metadata": ["{}"] * n,
            "status": status or ["ok"] * n,
            "reason": [None] * n,
            "text_norm": list(texts),
            "language": ["nb"] * n,
            "language_confidence": [0.9] * n,
            "duplicate_of": [None] * n,
            "duplicate_kind": [None] * n,
        }
    )


# Property tests (hypothesis) run the same examples on every machine, CI included: a fixed seed
# (derandomize), no timing deadline on a busy 2-core runner, and a bounded count per test
# (each test may lower it with @settings). HYPOTHESIS_PROFILE=dev explores with random seeds.
import os as _os  # noqa: E402

from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=100,
                                     print_blob=True)
_hypothesis_settings.register_profile("dev", deadline=None, max_examples=500)
_hypothesis_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --- A real run from an empty folder outside the repository (API and export tests) -------------

HOSTILE_WORKSHOP = '=HYPERLINK("http://example.invalid","klikk")'
HOSTILE_CARDS = [  # a workshop whose id and texts a spreadsheet would run as formulas
    ("fiendtlig-1", "@g1", "=1+1 er ikke en formel, men et ønske om flerårige budsjetter"),
    ("fiendtlig-2", "@g1", "-Vi må samarbeide på tvers av etatene og dele data"),
    ("fiendtlig-3", "+g2", "+Mer tillit til de ansatte og modige ledere"),
    ("fiendtlig-4", "+g2", "@alle: brukerne må med fra starten av tjenesteutviklingen"),
    ("fiendtlig-5", "=g3", "=SUM(A1:A9) sier ingenting om gevinstene for innbyggerne"),
]


@pytest.fixture(scope="session")
def run_outside_repo(tmp_path_factory):
    """`innsikt run` in an empty folder outside the repository (packaged default configs), on the
    small corpus plus a workshop of spreadsheet-hostile ids and texts. Returns the --out folder."""
    import csv
    import os
    import shutil
    import subprocess
    import sys

    corpus = tmp_path_factory.mktemp("corpus")
    for path in (FIXTURES / "small_corpus").glob("*.csv"):
        shutil.copy(path, corpus)
    with (corpus / "hostile.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["card_id", "workshop_id", "group_id", "card_type", "text"])
        writer.writerows([card_id, HOSTILE_WORKSHOP, group, "postit", text] for card_id, group, text in HOSTILE_CARDS)
    empty = tmp_path_factory.mktemp("empty")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--input", str(corpus), "--out", "out"],
                          cwd=empty, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "using the packaged default params.yaml" in done.stderr
    assert sorted(p.name for p in empty.iterdir()) == [".cache", "out"]  # nothing else written there
    return empty / "out"
