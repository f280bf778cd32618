"""Screenshots of the demo report for the README, at desktop width, in headless Chromium.

    dvc repro && python docs/make_screenshots.py

Writes docs/report-desktop.png (top of the page: counts, overview chart, themes by breadth),
docs/report-map.png (the card map), docs/report-theme.png (one theme with quotes, sub-themes and votes)
and docs/report-filter.png (the page filtered to one group of the first workshop, scrolled to the categories:
the sticky filter bar over that group's themes and quotes).
"""
from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the DevTools client lives beside the browser test

from cdp import Chromium, find_chromium  # noqa: E402

WIDTH = 1440
TOP_HEIGHT = 1900
# Choose the first workshop, then its first group, as a user does: set the option, fire `change`.
CHOOSE_A_GROUP = """(function () {
  var ws = document.getElementById("filter-verksted"), group = document.getElementById("filter-gruppe");
  ws.value = ws.options[1].value; ws.dispatchEvent(new Event("change"));
  group.value = Array.from(group.options).find(o => o.getAttribute("data-workshop") === ws.value).value;
  group.dispatchEvent(new Event("change"));
  return document.getElementById("filterstatus").textContent;
})()"""
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
        page = browser.open(report.as_uri(), width=WIDTH, height=1100)
        if page.external_requests():
            raise SystemExit(f"the report made network requests: {page.external_requests()}")
        page.screenshot(REPO / "docs" / "report-desktop.png", height=TOP_HEIGHT)
        for name, selector in SHOTS.items():
            page.screenshot(REPO / "docs" / name, selector=selector)
        print(page.evaluate(CHOOSE_A_GROUP))
        # The viewport, not a clip: the filter bar sticks to the top of what is on screen.
        page.evaluate("window.scrollTo(0, document.getElementById('kategorier').offsetTop - 90)")
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=page.session)
        (REPO / "docs" / "report-filter.png").write_bytes(base64.b64decode(shot["data"]))
    print("wrote", ", ".join(["report-desktop.png", *SHOTS, "report-filter.png"]), "in docs/")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:2]))  # optionally another report.html, e.g. of `innsikt run`
