"""report.html in a real browser: headless Chromium (Debian's `chromium`) through DevTools.

Checks what a static test of the HTML cannot: that the page renders its charts, that the
browser asks the network for nothing, that hostile card text never runs, and that the page's
own script (the card filter) does run, so "nothing ran" means something.
"""
from __future__ import annotations

import json
import os
import re
import struct
from collections import Counter
from pathlib import Path

import pytest

from cdp import Chromium, find_chromium
from pipeline.report_render import render_html
from report_fixtures import PWN_LABEL, PWN_SCRIPT, demo_insights, hostile_insights

pytestmark = pytest.mark.slow

CHROMIUM = find_chromium()
if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs these tests",
                allow_module_level=True)

DESKTOP_WIDTH = 1440
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("CI=true but no chromium on PATH: .ci/run should have installed it")
    with Chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def write_page(folder: Path, insights: dict) -> str:
    page = folder / "report.html"
    page.write_text(render_html(insights), encoding="utf-8")
    return page.as_uri()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def hostile_page(browser, tmp_path_factory):
    insights = hostile_insights()
    return insights, browser.open(write_page(tmp_path_factory.mktemp("hostile"), insights), width=DESKTOP_WIDTH)


def test_the_page_renders_its_charts(hostile_page):
    insights, page = hostile_page
    assert page.evaluate("document.title") == "Innsikt – rapport"
    bars = page.evaluate("document.querySelectorAll('#oversikt svg.chart rect:not(.track)').length")
    assert bars == sum(len(c["per_workshop"]) for c in insights["categories"])
    placed = sum(1 for c in insights["cards"] if c["position"] is not None)
    assert page.evaluate("document.querySelectorAll('#kart svg.card-map circle.pt').length") == placed
    for selector in ("#oversikt svg.chart", "#kart svg.card-map"):
        box = page.evaluate(f"(function(){{var r=document.querySelector('{selector}').getBoundingClientRect();"
                            "return [r.width, r.height];})()")
        assert box[0] > 300 and box[1] > 100, (selector, box)


def test_no_request_leaves_the_machine(hostile_page):
    _, page = hostile_page
    assert page.requested_urls() and page.requested_urls()[0].startswith("file://")  # the monitor saw the page
    assert page.external_requests() == []


def test_injected_card_text_does_not_run_and_shows_as_text(hostile_page):
    _, page = hostile_page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    table_text = page.evaluate("document.getElementById('korttabell').innerText")
    assert PWN_SCRIPT in table_text and 'onerror="window.__pwned=2"' in table_text
    assert PWN_LABEL in page.evaluate("document.querySelector('table.breadth-table').innerText")
    assert PWN_LABEL in page.evaluate("document.getElementById('kategorier').innerText")


def test_the_pages_own_script_runs(hostile_page):
    """The card filter works, so JavaScript is on and __pwned being unset is meaningful."""
    _, page = hostile_page
    shown = page.evaluate(
        "(function(){var i=document.getElementById('kortsok');i.value='baksiden';"
        "i.dispatchEvent(new Event('input'));return document.getElementById('kortteller').textContent;})()")
    assert shown == "Viser 1 av 11 kort"


def test_desktop_screenshot_is_not_blank(hostile_page, tmp_path):
    _, page = hostile_page
    data = page.screenshot(tmp_path / "report.png", height=1800)
    assert png_size(data) == (DESKTOP_WIDTH, 1800)
    assert len(data) > 40_000  # a blank 1440x1800 PNG is a few kB; text and charts make it far larger


def test_the_monitor_catches_a_request_to_the_network(browser, tmp_path):
    """Guards the guard: a page that loads a remote image is reported (loopback, nothing listens)."""
    page_file = tmp_path / "leak.html"
    page_file.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">', encoding="utf-8")
    page = browser.open(page_file.as_uri())
    assert page.external_requests() == ["http://127.0.0.1:9/pixel.png"]


def test_the_demo_report_renders_offline(browser, tmp_path_factory):
    insights = demo_insights(tmp_path_factory.mktemp("demo"))
    page = browser.open(write_page(tmp_path_factory.mktemp("demo-page"), insights), width=DESKTOP_WIDTH)
    assert page.external_requests() == []
    assert page.evaluate("document.querySelectorAll('#kart circle.pt').length") == sum(
        1 for c in insights["cards"] if c["position"] is not None)
    assert page.evaluate("document.querySelectorAll('article.theme').length") == len(insights["themes"])


def test_the_dvc_plots_template_draws_offline(browser, tmp_path):
    """`dvc plots show` with configs/dvc_plots/offline.html: bars drawn, images shown, no CDN."""
    from dvc_render import ImageRenderer, VegaRenderer
    from dvc_render import render_html as render_dvc_page

    points = [{"category": "Samhandling", "workshop": "w1", "cards": "3", "rev": "workspace"},
              {"category": "Samhandling", "workshop": "w2", "cards": "2", "rev": "workspace"},
              {"category": "Kultur <b>og</b> tankesett", "workshop": "w1", "cards": "1", "rev": "workspace"}]
    vega = VegaRenderer(points, "categories_by_workshop", template="bar_horizontal", x="cards", y="category",
                        title="Kort per kategori og verksted")
    chart = tmp_path / "chart.svg"
    chart.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/>'
                     "</svg>", encoding="utf-8")
    image = ImageRenderer([{"src": str(chart), "rev": "workspace"}], "chart.svg")
    index = tmp_path / "dvc_plots" / "index.html"
    render_dvc_page([vega, image], index, html_template=str(REPO / "configs" / "dvc_plots" / "offline.html"))

    page = browser.open(index.as_uri())
    assert page.external_requests() == []
    labels = page.evaluate("Array.from(document.querySelectorAll('.bars .label')).map(e => e.textContent)")
    values = page.evaluate("Array.from(document.querySelectorAll('.bars .value')).map(e => e.textContent)")
    assert labels == ["Samhandling", "Kultur <b>og</b> tankesett"] and values == ["5", "1"]
    assert page.evaluate("document.querySelector('img').naturalWidth") == 40


# --------------------------------------------------------------------------- workshop/group filter

COUNT_SPAN = re.compile(r'<span data-n="\w+" data-id="[^"]*"(?: data-ws="[^"]*")?>(\d+)</span>')


@pytest.fixture(scope="module")
def demo_page(browser, tmp_path_factory):
    insights = demo_insights(tmp_path_factory.mktemp("demo"))
    html = render_html(insights)
    page_file = tmp_path_factory.mktemp("demo-filter") / "report.html"
    page_file.write_text(html, encoding="utf-8")
    return insights, html, browser.open(page_file.as_uri(), width=DESKTOP_WIDTH)


def choose(page, select_id: str, *, value: str | None = None, text: str | None = None) -> str:
    """Pick an option as a user does (sets it, fires change); returns the filter's status line."""
    pick = (f"s.value={json.dumps(value)};" if value is not None else
            f"s.value=Array.from(s.options).find(o => o.textContent === {json.dumps(text)}).value;")
    return page.evaluate(f"(function(){{var s=document.getElementById('{select_id}');{pick}"
                         "s.dispatchEvent(new Event('change'));"
                         "return document.getElementById('filterstatus').textContent;})()")


def shown(page, selector: str, attribute: str) -> list[str]:
    """`attribute` of the elements matching `selector` that are displayed."""
    return page.evaluate(f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
                         f".filter(e => e.getClientRects().length > 0).map(e => e.getAttribute('{attribute}'))")


def expected(insights: dict, keep) -> dict:
    """What the page must show for the cards `keep` selects, computed here from the insights document."""
    cards = [c for c in insights["cards"] if keep(c)]
    live = [c for c in cards if c["status"] != "rejected"]
    kept_ids = {c["card_id"] for c in cards}
    themes = Counter(c["theme_id"] for c in live if c["theme_id"])
    return {
        "total": len(insights["cards"]), "cards": len(cards), "status": Counter(c["status"] for c in cards),
        "themes": themes,
        "subthemes": Counter(c["subtheme_id"] for c in live if c["subtheme_id"]),
        "categories": Counter(c["category_id"] for c in live if c["category_id"]),
        "quotes": sorted(q["card_id"] for t in insights["themes"] if themes[t["theme_id"]]
                         for q in t["quotes"] if q["card_id"] in kept_ids),
    }


def check_page_follows(page, want: dict) -> None:
    counts = lambda scope: {e["id"]: int(e["n"]) for e in page.evaluate(  # noqa: E731
        f"Array.from(document.querySelectorAll('[data-n=\"{scope}\"]:not([data-ws])'))"
        ".filter(e => e.getClientRects().length > 0).map(e => ({id: e.dataset.id, n: e.textContent}))")}
    assert counts("all") == {"": want["cards"]}
    assert counts("status") == {s: want["status"][s] for s in ("assigned", "outlier", "rejected")}
    # Themes (in their category, in the breadth table) and sub-themes: shown exactly when they keep cards.
    assert sorted(shown(page, "article.theme", "data-id")) == sorted(want["themes"])
    assert sorted(shown(page, "table.breadth-table tr[data-scope]", "data-id")) == sorted(want["themes"])
    assert sorted(shown(page, "li[data-scope=sub]", "data-id")) == sorted(want["subthemes"])
    assert counts("theme") == dict(want["themes"]) and counts("sub") == dict(want["subthemes"])
    assert counts("cat") == {k: v for k, v in want["categories"].items() if k != "emergent"}
    quotes = page.evaluate("Array.from(document.querySelectorAll('article.theme blockquote'))"
                           ".filter(e => e.getClientRects().length > 0).map(e => e.querySelector('footer')"
                           ".textContent.split(' · ')[0])")
    assert sorted(quotes) == want["quotes"]
    assert page.evaluate("document.getElementById('kortteller').textContent") == (
        f"Viser {want['cards']} av {want['total']} kort")


def test_the_filter_recounts_what_the_report_stage_counted(demo_page):
    """Unfiltered, every number the script computes from the card rows is the one the report stage wrote."""
    _, html, page = demo_page
    assert page.evaluate("Array.from(document.querySelectorAll('[data-n]')).map(e => e.textContent)") == \
        COUNT_SPAN.findall(html)


def test_choosing_a_workshop_then_a_group_filters_counts_themes_and_quotes(demo_page):
    insights, _, page = demo_page
    total = len(insights["cards"])
    by_pair = Counter((c["workshop_id"], c["group_id"]) for c in insights["cards"] if c["group_id"])
    (workshop, group), _ = min(by_pair.items(), key=lambda item: (-item[1], item[0]))  # the largest group

    status = choose(page, "filter-verksted", value=workshop)
    want = expected(insights, lambda c: c["workshop_id"] == workshop)
    assert status.startswith(f"Utvalg: {workshop} – {want['cards']} av {total} kort.")
    check_page_follows(page, want)
    assert set(shown(page, "#kart circle.pt", "data-workshop")) == {workshop}
    # Only this workshop's groups can be chosen now, all of them.
    choosable = "Array.from(document.querySelectorAll('#filter-gruppe option[data-workshop]')).filter(o => !o.hidden)"
    assert page.evaluate(f"{choosable}.map(o => o.getAttribute('data-workshop'))") == [workshop] * len(
        {c["group_id"] for c in insights["cards"] if c["workshop_id"] == workshop})

    status = choose(page, "filter-gruppe", text=f"{workshop} · {group}")
    want = expected(insights, lambda c: (c["workshop_id"], c["group_id"]) == (workshop, group))
    assert status.startswith(f"Utvalg: {workshop} · {group} – {want['cards']} av {total} kort.")
    assert page.evaluate(f"{choosable}.length") > 1  # the workshop's other groups stay choosable
    check_page_follows(page, want)
    assert 0 < len(want["themes"]) < len(insights["themes"])  # some themes hidden, some kept
    assert set(shown(page, "blockquote", "data-group")) == {group}
    assert set(shown(page, "#kart circle.pt", "data-group")) == {group}
    # A theme whose quotes all come from elsewhere says so.
    silent = [t["theme_id"] for t in insights["themes"] if want["themes"][t["theme_id"]] and t["quotes"]
              and not any(q["card_id"] in want["quotes"] for q in t["quotes"])]
    assert sorted(shown(page, "article.theme:has(.no-quotes:not([hidden]))", "data-id")) == sorted(silent)

    # The text search narrows the filtered table further; "Vis alt" brings everything back.
    page.evaluate("(function(){var i=document.getElementById('kortsok');i.value='zzz-ingen-treff';"
                  "i.dispatchEvent(new Event('input'));})()")
    assert page.evaluate("document.getElementById('kortteller').textContent") == f"Viser 0 av {total} kort"
    page.evaluate("(function(){var i=document.getElementById('kortsok');i.value='';"
                  "i.dispatchEvent(new Event('input'));document.getElementById('filter-nullstill').click();})()")
    check_page_follows(page, expected(insights, lambda c: True))
    assert page.evaluate("document.getElementById('filterstatus').textContent") == (
        f"Alle verksteder og grupper: {total} kort.")
    assert page.external_requests() == []


def test_choosing_a_group_alone_chooses_its_workshop(demo_page):
    insights, _, page = demo_page
    workshops = [w["workshop_id"] for w in insights["workshops"]]
    first, last = workshops[0], workshops[-1]
    choose(page, "filter-verksted", value="")
    choose(page, "filter-gruppe", text=f"{last} · uten gruppe")
    assert page.evaluate("document.getElementById('filter-verksted').value") == last
    check_page_follows(page, expected(insights, lambda c: c["workshop_id"] == last and c["group_id"] is None))
    choose(page, "filter-verksted", value=first)  # another workshop lets the group go
    assert page.evaluate("document.getElementById('filter-gruppe').value") == ""
    check_page_follows(page, expected(insights, lambda c: c["workshop_id"] == first))
    page.evaluate("document.getElementById('filter-nullstill').click()")
