"""Insights documents for the report tests: a small hostile one, and the demo corpus's.

`hostile_insights()` goes through the real `build_insights` (with the hashed-words fake
embedder) and carries card texts and theme labels (also of themes gone since the previous run)
that would run script if they were ever written into the page unescaped. `demo_insights()` is
the document `dvc repro` writes for corpora/demo, regenerated in a temporary folder when the
checked-out outputs are missing or stale.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import FakeEmbedder
from pipeline.params import Params, load_params
from pipeline.report import build_insights
from pipeline.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
PWN_SCRIPT = "<script>window.__pwned=1</script>"
PWN_IMG = '<img src="x" onerror="window.__pwned=2">'
PWN_LABEL = '<svg onload="window.__pwned=3">'

# card_id, workshop, group, card type, text, map status, theme, category, taxonomy theme
CARDS = [
    ("a1", "ws-alta", "g1", "postit", "Ettårige budsjetter stopper langsiktig innovasjon", "assigned", "t1",
     "rammebetingelser", "budsjettsystemet"),
    ("a2", "ws-alta", "g1", "postit", "Budsjettet er ettårig, gevinsten kommer om fem år", "assigned", "t1",
     "rammebetingelser", "budsjettsystemet"),
    ("a3", "ws-alta", "g2", "wish", f"{PWN_SCRIPT} budsjett for innovasjon over flere år", "assigned", "t1",
     "rammebetingelser", "budsjettsystemet"),
    ("a4", "ws-alta", None, "oracle", "Har vi fortsatt ettårige budsjetter i 2040?", "assigned", "t1",
     "rammebetingelser", "budsjettsystemet"),
    ("m1", "ws-molde", "g1", "postit", "Sektorene samarbeider ikke på tvers", "assigned", "t2", "samhandling",
     "siloer"),
    ("m2", "ws-molde", "g1", "postit", f"Silo på silo {PWN_IMG} samarbeid på tvers", "assigned", "t2",
     "samhandling", "siloer"),
    ("m3", "ws-molde", "g2", "reflection", "Vi må samarbeide på tvers av sektorene", "assigned", "t2", "samhandling",
     "siloer"),
    ("m4", "ws-molde", "g2", "postit", "Kunstig intelligens i saksbehandlingen", "assigned", "t3", "emergent", None),
    ("m5", "ws-alta", "g1", "postit", "Kunstig intelligens kan gjøre saksbehandlingen raskere", "assigned", "t3",
     "emergent", None),
    ("m6", "ws-molde", None, "wish", "Mer kaffe i pausene", "outlier", None, "emergent", None),
    ("m7", "ws-molde", None, "postit", "se baksiden", "rejected", None, None, None),
]
THEMES = [
    ("t1", f"budsjett, ettårig {PWN_LABEL}", ["budsjett", "ettårig"], "rammebetingelser", "budsjettsystemet", 0.8),
    ("t2", "samarbeid, tvers", ["samarbeid", "tvers"], "samhandling", "siloer", 0.7),
    ("t3", "kunstig intelligens", ["kunstig", "intelligens"], "emergent", None, 0.1),
]
# A second run: theme id, label, change, size before, size after, merged into, split from. The gone
# themes' labels are hostile too, since only the changes section shows them.
CHANGES = [
    ("t1", THEMES[0][1], "grown", 3, 4, None, []),
    ("t2", "samarbeid, tvers", "unchanged", 3, 3, None, []),
    ("t3", "kunstig intelligens", "new", 0, 2, None, ["t0"]),
    ("t0", f"digitalisering {PWN_IMG}", "merged", 4, 0, "t1", []),
    ("t9", f"kaffe {PWN_SCRIPT}", "retired", 2, 0, None, []),
]
CHANGE_COLUMNS = ["theme_id", "label", "change", "size_before", "size_after", "merged_into", "split_from"]
VOTES = [("ws-alta", "g1", "budsjettsystemet", "agree"), ("ws-alta", "g2", "budsjettsystemet", "agree"),
         ("ws-molde", "g1", "siloer", "agree"), ("ws-molde", "g2", "siloer", "disagree")]


def _frames() -> dict:
    n = len(CARDS)
    ids, workshops, groups, types, texts, statuses, themes, categories, taxonomy_themes = map(list, zip(*CARDS))
    rejected = [s == "rejected" for s in statuses]
    cards = pd.DataFrame({
        "card_id": ids, "workshop_id": workshops, "group_id": groups, "card_type": types, "text": texts,
        "source_file": "cards.csv", "source_row": list(range(2, n + 2)), "metadata": "{}",
        "status": ["rejected" if r else "ok" for r in rejected],
        "reason": ["junk phrase" if r else None for r in rejected], "text_norm": texts,
        "language": ["nb"] * n, "language_confidence": [0.9] * n, "duplicate_of": [None] * n,
        "duplicate_kind": [None] * n,
    })
    card_map = pd.DataFrame({
        "card_id": ids, "status": statuses, "theme_id": themes, "category_id": categories,
        "taxonomy_theme_id": taxonomy_themes, "confidence": [None if r else 0.7 for r in rejected],
        "centrality": [None if r else 0.5 for r in rejected], "subtheme_id": [None] * n,
    })
    live = [c for c, r in zip(CARDS, rejected) if not r]
    vectors = FakeEmbedder().encode([c[4] for c in live])
    embeddings = pd.DataFrame({"card_id": [c[0] for c in live], "embedding": [list(v) for v in vectors]})
    theme_frame = pd.DataFrame(
        [{"theme_id": t, "cluster": i, "label": label, "keywords": keywords, "category_id": category,
          "taxonomy_theme_id": tax, "emergent": tax is None, "confidence": confidence,
          "size": sum(1 for c in CARDS if c[6] == t), "parent_id": None}
         for i, (t, label, keywords, category, tax, confidence) in enumerate(THEMES)]
    )
    votes = pd.DataFrame([{"workshop_id": w, "group_id": g, "theme_id": t, "choice": c, "source_file": "votes.csv",
                           "source_row": i + 2} for i, (w, g, t, c) in enumerate(VOTES)])
    changes = pd.DataFrame(CHANGES, columns=CHANGE_COLUMNS)
    return {"cards": cards, "card_map": card_map, "themes": theme_frame, "votes": votes, "embeddings": embeddings,
            "changes": changes}


def hostile_insights() -> dict:
    inputs = [{"path": "cards.csv", "sha256": "0" * 64, "kind": "cards", "rows": len(CARDS)}]
    return build_insights(**_frames(), inputs=inputs, redactions={"telefon": 0, "e-post": 0, "fødselsnummer": 0},
                          redactions_by_field={},
                          taxonomy=load_taxonomy(REPO / "configs" / "taxonomy.yaml"), params=Params())


def _dvc_outputs_current() -> bool:
    """True when `dvc repro` has nothing to do, so outputs/ matches the code and the corpus."""
    if not (REPO / ".dvc").is_dir() or not (REPO / "outputs" / "report" / "insights.json").is_file():
        return False
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--quiet"], cwd=REPO, capture_output=True,
                          timeout=300)
    return done.returncode == 0


_DEMO: dict[str, dict] = {}  # one demo run per test session, whichever module asks first


def demo_insights(scratch: Path) -> dict:
    """insights.json of corpora/demo: CI's `dvc repro` output when current, else a fresh run in `scratch`."""
    if "insights" not in _DEMO:
        _DEMO["insights"] = _load_or_run_demo(scratch)
    return _DEMO["insights"]


def _load_or_run_demo(scratch: Path) -> dict:
    if _dvc_outputs_current():
        return json.loads((REPO / "outputs" / "report" / "insights.json").read_text(encoding="utf-8"))
    from pipeline.cli import run_all

    cache = scratch / "cache"
    if (REPO / ".cache" / "embeddings").is_dir():  # reuse the developer's embeddings; never write to them
        shutil.copytree(REPO / ".cache" / "embeddings", cache)
    return run_all(inputs=[REPO / "corpora" / "demo"], out=scratch / "run",
                   params=load_params(REPO / "configs" / "params.yaml"),
                   taxonomy=REPO / "configs" / "taxonomy.yaml", cache_dir=cache)
