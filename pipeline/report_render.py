"""Render the insights document as Markdown or as one self-contained HTML page.

Two steps: `report_view` turns the insights dict (see schemas/insights.schema.json) into a plain
view model (numbers formatted, lists sorted, the Norwegian sentences written), and Jinja2
templates in pipeline/templates/ lay it out: report.html.j2 and report.md.j2 from the same view.
Output is deterministic: no timestamps, no random ids; lists keep their document order and
mappings (per-workshop counts, package versions) are emitted in workshop order or sorted, so a
rerun on the same data gives a byte-identical report that diffs cleanly under version control.

The HTML must open offline and must never execute card text: it has no external resources
(CSS, script and charts are inlined), and the HTML environment autoescapes every value.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping

import jinja2
import jsonschema_rs
from markupsafe import Markup

from pipeline.ids import EMERGENT, EMERGENT_NAME
from pipeline.report_charts import (
    COLOURS,
    TemplateEnvironment,
    card_map,
    category_chart,
    category_colours,
    html_environment,
    theme_centres,
    workshop_colours,
)

__all__ = ["load_schema", "validate_insights", "report_view", "render_markdown", "render_html", "html_chunks",
           "workshop_colours", "category_colours", "theme_centres", "COLOURS"]

REPORT_TITLE = "Innsikt – rapport"
DASH = "–"

CARD_TYPE_LABELS = {
    "wish": "ønske",
    "postit": "post-it",
    "oracle": "orakel",
    "reflection": "refleksjon",
    "other": "annet",
}
STATUS_LABELS = {"assigned": "tildelt", "outlier": "uteligger", "rejected": "avvist"}
CHOICE_LABELS = {"1": "Påstand 1", "2": "Påstand 2", "agree": "Enig", "disagree": "Uenig"}
VOTE_SPLIT_LABELS = {"unanimous": "Enstemmig", "even": "Delt på midten"}
CHANGES_TITLE = "Endringer siden forrige kjøring"
# Change kinds in document order (changes.themes[] is sorted by it), labelling counts and lists.
# Not "Nye temaer": that is the emergent section's title. Unchanged themes are counted but not
# listed: they are most themes of a rerun.
CHANGE_LABELS = {"new": "Nye", "grown": "Vokst", "shrunk": "Krympet", "unchanged": "Uendret",
                 "merged": "Slått sammen", "retired": "Borte"}
LISTED_CHANGES = ("new", "grown", "shrunk", "merged", "retired")
CURATION_TITLE = "Analytikerens beslutninger (curation.yaml)"
OTHER_TITLE = "Annet innspill"
OTHER_TEXT = ("Kort som ikke sikkert hører til noe tema: kartleggingen er usikker og ingen gruppe av like kort "
              "støtter den, eller kortet ligger langt fra alle nye temaer. De står her i stedet for å tvinges inn "
              "i et tema.")
REVIEW_TITLE = "Til gjennomgang"
STANCE_TEXT = {"agreed": "gruppene er enige", "leaning": "flertall, men ikke enighet", "divided": "gruppene er delt"}
NO_TAXONOMY_THEME = "intet tema i taksonomien"


# --------------------------------------------------------------------------- schema


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return (resources.files("pipeline") / "schemas" / "insights.schema.json").read_text(encoding="utf-8")


def load_schema() -> dict:
    """The insights JSON Schema (a fresh dict each call, so callers may mutate it)."""
    return json.loads(_schema_text())


@lru_cache(maxsize=1)
def _compiled_validator() -> jsonschema_rs.Draft202012Validator:
    # As jsonschema's Draft202012Validator does by default: formats unchecked, nothing fetched.
    return jsonschema_rs.Draft202012Validator(load_schema(), validate_formats=False, offline=True)


def validate_insights(insights: dict) -> None:
    """Raise jsonschema.ValidationError (the most relevant one) if `insights` is invalid.

    Only the shape is checked; cross-references (e.g. that a card's theme_id exists)
    are the producing stage's responsibility. jsonschema-rs decides (compiled: 0.05 s for
    10k cards, where jsonschema takes 3 s); only an invalid document goes to jsonschema,
    for the error the report has always raised.
    """
    if _compiled_validator().is_valid(insights):
        return
    from jsonschema import Draft202012Validator, ValidationError  # only now: importing it takes 0.3 s

    Draft202012Validator(load_schema()).validate(insights)
    # jsonschema let it pass: it reads "$" in a pattern as Python's re does (also before a final
    # newline), jsonschema-rs as the standard's ECMA-262 does. The stricter verdict stands.
    error = next(_compiled_validator().iter_errors(insights))
    where = "/".join(str(part) for part in error.instance_path) or "the document"
    raise ValidationError(f"{error.message} (at {where}; found by jsonschema-rs)")


# --------------------------------------------------------------------------- templates


def _md_text(value: Any) -> str:
    """Verbatim text, but with '<' backslash-escaped so card text can never become raw HTML
    when the Markdown is rendered (CommonMark shows '\\<' as a plain '<')."""
    return str(value).replace("\\", "\\\\").replace("<", "\\<")


def _md_inline(value: Any) -> str:
    """Single-line text for headings and list items."""
    return " ".join(_md_text(value).split())


def _md_cell(value: Any) -> str:
    # A table row is one line and '|' separates cells, so both must be neutralised.
    return _md_inline(value).replace("|", "\\|")


def _md_quote(value: Any) -> list[str]:
    """A block quote's lines: one '> ' line per line of text, a bare '>' for a blank one."""
    return ["> " + _md_text(line) if line.strip() else ">" for line in str(value).splitlines() or [""]]


@lru_cache(maxsize=1)
def _markdown_environment() -> jinja2.Environment:
    """The Markdown templates: not autoescaped (HTML entities would show as text), so every data value
    goes through a filter: md_inline (headings, list items), md_cell (table cells), md_quote (block quotes)."""
    env = TemplateEnvironment(loader=jinja2.PackageLoader("pipeline", "templates"), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                              lstrip_blocks=True)
    env.filters.update(md_inline=_md_inline, md_cell=_md_cell, md_text=_md_text, md_quote=_md_quote)
    return env


@lru_cache(maxsize=2)
def _asset(name: str) -> Markup:
    """A CSS or script file of the package, inlined into the page as it is (it is ours, not data)."""
    return Markup((resources.files("pipeline") / "templates" / name).read_text(encoding="utf-8").strip())


def render_markdown(insights: dict) -> str:
    """Markdown report: counts, category x workshop table, changes since the previous run, themes with
    quotes, votes, and the review queue when there is one."""
    text = _markdown_environment().get_template("report.md.j2").render(report_view(insights))
    return text.rstrip("\n") + "\n"


def render_html(insights: dict) -> str:
    """One self-contained, offline HTML5 page (inline CSS, SVG and JS; no external resources)."""
    return "".join(html_chunks(insights))


def html_chunks(insights: dict) -> Iterator[str]:
    """`render_html(insights)` in the pieces the template renders it in (what `render` joins), to write as they come."""
    return html_environment().get_template("report.html.j2").generate(
        report_view(insights), css=_asset("report.css"), script=_asset("report.js"), colours=COLOURS)


# --------------------------------------------------------------------------- view model: texts


def _fmt_conf(value: float | None) -> str:
    """Norwegian decimal comma, two decimals; a dash when unknown."""
    return DASH if value is None else f"{value:.2f}".replace(".", ",")


def _n(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _cards(count: int) -> str:
    return _n(count, "kort", "kort")


def _groups(count: int) -> str:
    return _n(count, "gruppe", "grupper")


def _choice_label(choice: str) -> str:
    return CHOICE_LABELS.get(choice, choice)


def _split_text(vote: Mapping[str, Any]) -> str:
    """The split in words: 'Enstemmig (Enig)', 'Delt på midten', '2/3 mot 1/3 (flertall for Påstand 1)'."""
    split = vote["split"]
    if split["label"] == "even":
        return VOTE_SPLIT_LABELS["even"]
    leader = _choice_label(split["leading_choice"] or DASH)
    if split["label"] == "unanimous":
        return f"{VOTE_SPLIT_LABELS['unanimous']} ({leader})"
    return f"{split['text']} (flertall for {leader})"


def _breadth_text(theme: Mapping[str, Any], n_workshops: int) -> str:
    """E.g. '3 av 4 verksteder · 5 grupper · 10 unike bidrag'."""
    breadth = theme["breadth"]
    return (f"{breadth['workshops']} av {_n(n_workshops, 'verksted', 'verksteder')} · "
            f"{_groups(breadth['groups'])} · {_n(theme['voices'], 'unikt bidrag', 'unike bidrag')}")


def _distinctive_text(theme: Mapping[str, Any]) -> str:
    found = theme["breadth"]["distinctive_for"]
    return "" if found is None else f"særpreg for {found['workshop_id']} ({found['cards']} kort, p = {found['p_value']:.3g})"


def _stance_text(theme: Mapping[str, Any]) -> str:
    vote = theme["vote"]
    return "" if vote is None else f"{STANCE_TEXT[vote['stance']]} ({vote['text']}, {_groups(vote['groups'])})"


def _change_size_text(change: Mapping[str, Any]) -> str:
    """'8 kort' (new), '5 → 8 kort' (grown, shrunk), 'hadde 6 kort' (merged, retired)."""
    if change["change"] == "new":
        return _cards(change["size_after"])
    if change["change"] in ("merged", "retired"):
        return f"hadde {_cards(change['size_before'])}"
    return f"{change['size_before']} → {_cards(change['size_after'])}"


def _vote_summary(vote: Mapping[str, Any]) -> str:
    """E.g. 'Påstand 1: 5 grupper · Påstand 2: 3 grupper'."""
    return " · ".join(f"{_choice_label(s['choice'])}: {_groups(s['count'])}" for s in vote["statements"])


# --------------------------------------------------------------------------- view model: lookups


def _workshop_order(insights: Mapping[str, Any]) -> tuple[str, ...]:
    """Workshops in document order, then any only seen in counts/cards, sorted.

    Colours are assigned by position, so every workshop must be in this tuple.
    """
    listed = [w["workshop_id"] for w in insights["workshops"]]
    seen: set[str] = set()
    for item in [*insights["categories"], *insights["themes"]]:
        seen.update(item["per_workshop"])
    seen.update(card["workshop_id"] for card in insights["cards"])
    for theme in insights["themes"]:
        seen.update(q["workshop_id"] for q in theme["quotes"])
    extra = sorted(seen.difference(listed))
    return tuple(dict.fromkeys([*listed, *extra]))


def _by_breadth(themes: Iterable[dict]) -> list[dict]:
    """Broadest first (breadth rank), which is how analysts rank themes; rank is unique."""
    return sorted(themes, key=lambda t: (t["breadth"]["rank"], t["theme_id"]))


def _is_emergent(theme: Mapping[str, Any]) -> bool:
    return bool(theme["emergent"]) or theme["category_id"] == EMERGENT


class _View:
    """Indexes built once per render, and the builders of the view model's parts that use them."""

    def __init__(self, insights: Mapping[str, Any]):
        self.insights = insights
        self.workshops = _workshop_order(insights)
        self.category_names: dict[str, str] = {}
        self.taxonomy_theme_names: dict[str, str] = {}
        for category in insights["taxonomy"]["categories"]:
            self.category_names[category["category_id"]] = category["name"]
            for theme in category["themes"]:
                self.taxonomy_theme_names[theme["taxonomy_theme_id"]] = theme["name"]
        for category in insights["categories"]:
            self.category_names.setdefault(category["category_id"], category["name"])
        self.votes_by_theme: dict[str, list[dict]] = {}
        for vote in insights["votes"]:
            self.votes_by_theme.setdefault(vote["taxonomy_theme_id"], []).append(vote)
        self.theme_labels = ({t["theme_id"]: t["label"] for t in insights["themes"]}
                             | {s["theme_id"]: s["label"] for t in insights["themes"] for s in t["subthemes"]})
        # This run's themes and gone ones, for merged_into and split_from.
        self.change_labels = {c["theme_id"]: c["label"] for c in insights["changes"]["themes"]}
        # card_id -> group_id, for the quotes' filter attributes.
        self.card_groups = {c["card_id"]: c["group_id"] for c in insights["cards"]}

    def colour_index(self, workshop_id: str) -> int:
        return self.workshops.index(workshop_id) % len(COLOURS["workshop"])

    def per_workshop(self, per_workshop: Mapping[str, int]) -> list[dict]:
        """Counts in report workshop order, skipping zero counts."""
        return [{"workshop": w, "n": per_workshop[w], "colour": self.colour_index(w)}
                for w in self.workshops if per_workshop.get(w)]

    def category_name(self, category_id: str | None) -> str:
        return DASH if category_id is None else self.category_names.get(category_id, category_id)

    def theme_ref(self, theme_id: str) -> dict:
        """A theme named in the changes: linked when it is a theme of this run."""
        label = self.theme_labels.get(theme_id) or self.change_labels.get(theme_id) or theme_id
        return {"id": theme_id, "label": label, "linked": theme_id in self.theme_labels}

    def quote(self, quote: Mapping[str, Any]) -> dict:
        return {"text": quote["text"], "card_id": quote["card_id"], "workshop": quote["workshop_id"],
                "group": self.card_groups.get(quote["card_id"]),
                "card_type": CARD_TYPE_LABELS.get(quote["card_type"], quote["card_type"])}

    def vote(self, vote: Mapping[str, Any]) -> dict:
        # Agree/disagree votes are on one statement: print it once, not once per option.
        texts = {s["statement"] for s in vote["statements"]}
        shared = texts.pop() if len(texts) == 1 else None
        total = sum(s["count"] for s in vote["statements"])
        vote_colours = COLOURS["vote"]
        statements = [
            {"choice": _choice_label(s["choice"]), "count": s["count"], "groups": _groups(s["count"]),
             "colour": vote_colours[i % len(vote_colours)],
             "width": f"{100 * s['count'] / total:.1f}" if total else "",
             "statement": s["statement"], "own_statement": s["statement"] if shared is None else None,
             "per_workshop": self.per_workshop(s["per_workshop"])}
            for i, s in enumerate(vote["statements"])
        ]
        return {"category": self.category_names.get(vote["category_id"], vote["category_id"]),
                "taxonomy_theme": self.taxonomy_theme_names.get(vote["taxonomy_theme_id"], vote["taxonomy_theme_id"]),
                "groups": vote["groups"], "groups_text": _groups(vote["groups"]), "split_label": vote["split"]["label"],
                "split_text": _split_text(vote), "summary": _vote_summary(vote), "shared_statement": shared,
                "has_bar": total > 0, "statements": statements}

    def theme(self, theme: Mapping[str, Any]) -> dict:
        taxonomy_id = theme["taxonomy_theme_id"]
        return {
            "id": theme["theme_id"], "label": theme["label"], "size": theme["size"],
            "size_text": _cards(theme["size"]),
            "voices_text": _n(theme["voices"], "unikt bidrag", "unike bidrag"),
            "relevant_for_many": theme["breadth"]["relevant_for_many"],
            "notes": [text for text in (_distinctive_text(theme), _stance_text(theme)) if text],
            "taxonomy_id": taxonomy_id,
            "taxonomy_name": None if taxonomy_id is None else self.taxonomy_theme_names.get(taxonomy_id, taxonomy_id),
            "confidence": _fmt_conf(theme["confidence"]),
            "breadth_text": _breadth_text(theme, len(self.workshops)), "rank": theme["breadth"]["rank"],
            "keywords": theme["keywords"],
            "per_workshop": self.per_workshop(theme["per_workshop"]),
            "quotes": [self.quote(q) for q in theme["quotes"]],
            "subthemes": [{"id": s["theme_id"], "label": s["label"], "size": s["size"], "size_text": _cards(s["size"]),
                           "headline": self.quote(s["quotes"][0]) if s["quotes"] else None}
                          for s in theme["subthemes"]],
            "votes": [self.vote(v) for v in self.votes_by_theme.get(taxonomy_id or "", [])],
        }

    def unmatched_taxonomy_themes(self, category_id: str) -> list[str]:
        """Names of the taxonomy themes in a category that no found theme maps onto."""
        mapped = {t["taxonomy_theme_id"] for t in self.insights["themes"]}
        for category in self.insights["taxonomy"]["categories"]:
            if category["category_id"] == category_id:
                return [t["name"] for t in category["themes"] if t["taxonomy_theme_id"] not in mapped]
        return []

    def categories(self) -> list[dict]:
        """The taxonomy's categories (not the emergent one) with their themes, broadest first."""
        themes = self.insights["themes"]
        return [
            {"id": c["category_id"], "name": c["name"], "size": c["size"], "size_text": _cards(c["size"]),
             "per_workshop": self.per_workshop(c["per_workshop"]),
             "themes": [self.theme(t) for t in _by_breadth(
                 t for t in themes if t["category_id"] == c["category_id"] and not _is_emergent(t))],
             "unmatched": self.unmatched_taxonomy_themes(c["category_id"])}
            for c in self.insights["categories"] if c["category_id"] != EMERGENT
        ]

    def orphans(self) -> list[dict]:
        """Non-emergent themes whose category is not listed; shown rather than silently dropped."""
        known = {c["category_id"] for c in self.insights["categories"]}
        return [self.theme(t) for t in _by_breadth(
            t for t in self.insights["themes"] if not _is_emergent(t) and t["category_id"] not in known)]

    def breadth(self) -> list[dict]:
        """Every theme by breadth rank: how many workshops and groups raised it."""
        return [{"id": t["theme_id"], "rank": t["breadth"]["rank"], "label": t["label"],
                 "category": self.category_names.get(t["category_id"], t["category_id"]),
                 "workshops": t["breadth"]["workshops"], "groups": t["breadth"]["groups"], "voices": t["voices"],
                 "size": t["size"], "relevant_for_many": t["breadth"]["relevant_for_many"]}
                for t in _by_breadth(self.insights["themes"])]

    def changes(self) -> dict:
        changes = self.insights["changes"]
        listed = []
        for kind in LISTED_CHANGES:
            entries = [c for c in changes["themes"] if c["change"] == kind]
            if entries:
                listed.append({"label": CHANGE_LABELS[kind], "entries": [
                    {"theme": self.theme_ref(c["theme_id"]), "size": _change_size_text(c),
                     "merged_into": None if c["merged_into"] is None else self.theme_ref(c["merged_into"]),
                     "split_from": [self.theme_ref(t) for t in c["split_from"]]}
                    for c in entries]})
        return {
            "since_previous_run": changes["since_previous_run"],
            "first_run_text": (f"Første kjøring: ingen tidligere temaer å sammenligne med, så alle temaene er nye "
                               f"({_n(changes['counts']['new'], 'tema', 'temaer')})."),
            "counts_text": " · ".join(f"{label}: {changes['counts'][kind]}" for kind, label in CHANGE_LABELS.items()),
            "listed": listed,
            # One line per curation rule applied, e.g. 'linje 13, merge: merged theme-a into theme-b (4 kort)'.
            "curation": [f"linje {e['line']}, {e['rule']}: {e['detail']} ({_cards(e['cards'])})"
                         for e in changes.get("curation", [])],
        }

    def card(self, card: Mapping[str, Any]) -> dict:
        theme_id = card["theme_id"]
        return {
            "id": card["card_id"], "workshop": card["workshop_id"], "group": card["group_id"],
            "card_type": CARD_TYPE_LABELS.get(card["card_type"], card["card_type"]),
            "status": card["status"], "status_label": STATUS_LABELS.get(card["status"], card["status"]),
            "reason": card["reason"], "duplicate_of": card["duplicate_of"],
            # What the filter counts and matches by; a null id as "".
            "data": {"status": card["status"], "theme": theme_id or "", "subtheme": card["subtheme_id"] or "",
                     "category": card["category_id"] or ""},
            "theme_id": theme_id, "theme_label": None if theme_id is None else self.theme_labels.get(theme_id),
            "category": self.category_name(card["category_id"]), "confidence": _fmt_conf(card["confidence"]),
            "text": card["text"],
        }

    def other_input(self) -> list[dict]:
        """The outliers: cards that do not surely belong to any theme."""
        cards = sorted((c for c in self.insights["cards"] if c["status"] == "outlier"),
                       key=lambda c: (c["workshop_id"], c["card_id"]))
        return [{"id": c["card_id"], "workshop": c["workshop_id"], "group": c["group_id"], "text": c["text"],
                 "nearest": self.taxonomy_theme_names.get(c["taxonomy_theme_id"] or "", NO_TAXONOMY_THEME)}
                for c in cards]

    def filter_groups(self) -> list[dict]:
        """(workshop, group) of the cards, in workshop order, groups sorted, cards without a group last;
        an option's value is its index, its data-* what the filter matches."""
        pairs = {(c["workshop_id"], c["group_id"]) for c in self.insights["cards"]}
        order = {w: i for i, w in enumerate(self.workshops)}
        ordered = sorted(pairs, key=lambda p: (order[p[0]], p[1] is None, p[1] or ""))
        return [{"index": i, "workshop": w, "group": g} for i, (w, g) in enumerate(ordered, start=1)]

    def review(self) -> dict | None:
        """The review queue (insights["review"]) when the run has one: cards an analyst should look at."""
        review = self.insights.get("review")
        if review is None:
            return None
        return {"method": review["method"], "queue": [
            {"rank": r["rank"], "card_id": r["card_id"], "workshop": r["workshop_id"], "group": r["group_id"],
             "text": r["text"], "theme_id": r["theme_id"],
             "theme_label": r["theme_label"] if r["theme_label"] is not None else DASH,
             "category": self.category_name(r["category_id"]),
             "taxonomy_theme": DASH if r["taxonomy_theme_id"] is None
             else self.taxonomy_theme_names.get(r["taxonomy_theme_id"], r["taxonomy_theme_id"]),
             "confidence": _fmt_conf(r["confidence"]), "reason": r["reason"]}
            for r in sorted(review["queue"], key=lambda r: (r["rank"], r["card_id"]))]}


def report_view(insights: Mapping[str, Any]) -> dict:
    """The plain view model both templates render: only strings, numbers, booleans, None, lists and
    dicts; data text is raw (the templates escape it for their format)."""
    v = _View(insights)
    run, counts = insights["run"], insights["run"]["counts"]
    cards_by_ws = {w["workshop_id"]: w["cards"] for w in insights["workshops"]}
    return {
        "text": {"title": REPORT_TITLE, "emergent": EMERGENT_NAME, "other": OTHER_TITLE,
                 "other_text": OTHER_TEXT, "changes": CHANGES_TITLE, "curation": CURATION_TITLE,
                 "review": REVIEW_TITLE, "dash": DASH},
        "run": {"version": run["innsikt_version"], "model": run["embedding_model"], "params_hash": run["params_hash"],
                "params_short": run["params_hash"][:12], "taxonomy": insights["taxonomy"]["id"],
                "schema_version": insights["schema_version"], "inputs": run["inputs"],
                "packages": sorted(run["package_versions"].items())},
        "counts": counts,
        "workshops": [w | {"colour": v.colour_index(w["workshop_id"])} for w in insights["workshops"]],
        "workshop_ids": list(v.workshops),
        "n_workshops": len(v.workshops),
        "filter_groups": v.filter_groups(),
        "n_cards": len(insights["cards"]),
        "legend": [{"workshop": w, "colour": v.colour_index(w),
                    "cards": _cards(cards_by_ws[w]) if w in cards_by_ws else None} for w in v.workshops],
        "category_chart": category_chart(insights["categories"], v.workshops),
        "category_matrix": [{"name": c["name"], "counts": [c["per_workshop"].get(w, 0) for w in v.workshops],
                             "size": c["size"]} for c in insights["categories"]],
        "breadth": v.breadth(),
        "card_map": card_map(insights, v.category_names),
        "changes": v.changes(),
        "categories": v.categories(),
        "orphans": v.orphans(),
        "emergent": [v.theme(t) for t in _by_breadth(t for t in insights["themes"] if _is_emergent(t))],
        "other_input": v.other_input(),
        "votes": [v.vote(vote) for vote in insights["votes"]],
        "cards": [v.card(c) for c in insights["cards"]],
        "review": v.review(),
    }
