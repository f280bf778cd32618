"""Screenshots of the demo report for the README, at desktop width, in headless Chromium.

    dvc repro && python docs/make_screenshots.py

Writes docs/report-desktop.png (top of the page: counts, overview chart, themes by breadth),
docs/report-map.png (the card map) and docs/report-theme.png (one theme with quotes, sub-themes and votes).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the DevTools client lives beside the browser test

from cdp import Chromium, find_chromium  # noqa: E402

WIDTH = 1440
TOP_HEIGHT = 1900
SHOTS = {
    "report-map.png": "#kart",
    # The first theme with sub-themes and vote results: the hierarchy, quotes and a vote split in one picture.
    "report-theme.png": "article.theme:has(.subthemes):has(.votes)",
}


def main(report: Path = REPO / "outputs" / "report" / "report.html") -> None:
    if not report.is_file():
        raise SystemExit(f"{report} not found: run `dvc repro` first")
    binary = find_chromium()
    if binary is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile, Chromium(binary, Path(profile)) as browser:
        page = browser.open(report.as_uri(), width=WIDTH, height=1000)
        if page.external_requests():
            raise SystemExit(f"the report made network requests: {page.external_requests()}")
        page.screenshot(REPO / "docs" / "report-desktop.png", height=TOP_HEIGHT)
        for name, selector in SHOTS.items():
            page.screenshot(REPO / "docs" / name, selector=selector)
    print("wrote", ", ".join(["report-desktop.png", *SHOTS]), "in docs/")


if __name__ == "__main__":
    main()
