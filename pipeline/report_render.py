"""Render the insights document as Markdown or as one self-contained HTML page.

Pure functions from the insights dict (see schemas/insights.schema.json) to text.
Output is deterministic: no timestamps, no random ids; lists keep their document
order and mappings (per-workshop counts, package versions) are emitted in workshop
order or sorted, so a rerun on the same data gives a byte-identical report that
diffs cleanly under version control.

The HTML must open offline and must never execute card text: it has no external
resources, and every value taken from the data goes through `_esc`.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping

import jsonschema_rs

__all__ = ["load_schema", "validate_insights", "render_markdown", "render_html", "workshop_colours",
           "category_colours", "NO_CATEGORY_COLOUR"]

REPORT_TITLE = "Innsikt – rapport"
EMERGENT_ID = "emergent"
EMERGENT_TITLE = "Nye temaer (utenfor taksonomien)"
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

# Workshop colours (fill, text on fill). Text colour is chosen per fill so that the
# numbers printed inside the bars keep readable contrast on the light colours.
PALETTE = (
    ("#4e79a7", "#ffffff"),
    ("#f28e2b", "#1f2328"),
    ("#59a14f", "#ffffff"),
    ("#e15759", "#ffffff"),
    ("#76b7b2", "#1f2328"),
    ("#edc948", "#1f2328"),
    ("#b07aa1", "#ffffff"),
    ("#9c755f", "#ffffff"),
)
VOTE_COLOURS = ("#4e79a7", "#f28e2b", "#76b7b2", "#b07aa1")
# Category colours for the card map, a different set from the workshop colours so the two
# legends are never confused; taken by category position in the document.
CATEGORY_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4")
NO_CATEGORY_COLOUR = "#9aa4ae"
VOTE_SPLIT_LABELS = {"unanimous": "Enstemmig", "even": "Delt på midten"}
CHANGES_TITLE = "Endringer siden forrige kjøring"
# Change kinds in document order (changes.themes[] is sorted by it), labelling counts and lists.
# Not "Nye temaer": that is the emergent section's title. Unchanged themes are counted but not
# listed: they are most themes of a rerun.
CHANGE_LABELS = {"new": "Nye", "grown": "Vokst", "shrunk": "Krympet", "unchanged": "Uendret",
                 "merged": "Slått sammen", "retired": "Borte"}
LISTED_CHANGES = ("new", "grown", "shrunk", "merged", "retired")


def workshop_colours(workshops: Iterable[str]) -> dict[str, str]:
    """Workshop id -> fill colour, by position (the same in the HTML, the PNG and the SVG)."""
    return {w: PALETTE[i % len(PALETTE)][0] for i, w in enumerate(workshops)}


def category_colours(category_ids: Iterable[str]) -> dict[str, str]:
    """Category id -> colour, by position in the document's category list."""
    return {c: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)] for i, c in enumerate(category_ids)}


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


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class _Lookup:
    """Indexes built once per render so the section renderers stay simple."""

    workshops: tuple[str, ...]
    category_names: dict[str, str]
    taxonomy_theme_names: dict[str, str]
    theme_labels: dict[str, str]
    votes_by_theme: dict[str, list[dict]]
    change_labels: dict[str, str]  # this run's themes and gone ones, for merged_into and split_from
    card_groups: dict[str, str | None]  # card_id -> group_id, for the quotes' filter attributes

    def theme_name(self, theme_id: str) -> str:
        return self.theme_labels.get(theme_id) or self.change_labels.get(theme_id) or theme_id

    def colour(self, workshop_id: str) -> tuple[str, str]:
        return PALETTE[self.workshops.index(workshop_id) % len(PALETTE)]

    def colour_index(self, workshop_id: str) -> int:
        return self.workshops.index(workshop_id) % len(PALETTE)


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


def _build_lookup(insights: Mapping[str, Any]) -> _Lookup:
    category_names: dict[str, str] = {}
    taxonomy_theme_names: dict[str, str] = {}
    for category in insights["taxonomy"]["categories"]:
        category_names[category["category_id"]] = category["name"]
        for theme in category["themes"]:
            taxonomy_theme_names[theme["taxonomy_theme_id"]] = theme["name"]
    for category in insights["categories"]:
        category_names.setdefault(category["category_id"], category["name"])
    votes_by_theme: dict[str, list[dict]] = {}
    for vote in insights["votes"]:
        votes_by_theme.setdefault(vote["taxonomy_theme_id"], []).append(vote)
    return _Lookup(
        workshops=_workshop_order(insights),
        category_names=category_names,
        taxonomy_theme_names=taxonomy_theme_names,
        theme_labels={t["theme_id"]: t["label"] for t in insights["themes"]}
        | {sub["theme_id"]: sub["label"] for t in insights["themes"] for sub in t["subthemes"]},
        votes_by_theme=votes_by_theme,
        change_labels={c["theme_id"]: c["label"] for c in insights["changes"]["themes"]},
        card_groups={c["card_id"]: c["group_id"] for c in insights["cards"]},
    )


def _ordered_counts(per_workshop: Mapping[str, int], lk: _Lookup) -> list[tuple[str, int]]:
    """(workshop_id, count) in report workshop order, skipping zero counts."""
    return [(w, per_workshop[w]) for w in lk.workshops if per_workshop.get(w)]


def _by_breadth(themes: Iterable[dict]) -> list[dict]:
    """Broadest first (breadth rank), which is how analysts rank themes; rank is unique."""
    return sorted(themes, key=lambda t: (t["breadth"]["rank"], t["theme_id"]))


def _is_emergent(theme: Mapping[str, Any]) -> bool:
    return bool(theme["emergent"]) or theme["category_id"] == EMERGENT_ID


def _taxonomy_categories(insights: Mapping[str, Any]) -> list[dict]:
    return [c for c in insights["categories"] if c["category_id"] != EMERGENT_ID]


def _category_themes(insights: Mapping[str, Any], category_id: str) -> list[dict]:
    return _by_breadth(t for t in insights["themes"] if t["category_id"] == category_id and not _is_emergent(t))


def _emergent_themes(insights: Mapping[str, Any]) -> list[dict]:
    return _by_breadth(t for t in insights["themes"] if _is_emergent(t))


def _orphan_themes(insights: Mapping[str, Any]) -> list[dict]:
    """Non-emergent themes whose category is not listed; shown rather than silently dropped."""
    known = {c["category_id"] for c in insights["categories"]}
    return _by_breadth(t for t in insights["themes"] if not _is_emergent(t) and t["category_id"] not in known)


def _unmatched_taxonomy_themes(insights: Mapping[str, Any], category_id: str) -> list[dict]:
    """Taxonomy themes in a category that no found theme maps onto."""
    mapped = {t["taxonomy_theme_id"] for t in insights["themes"]}
    for category in insights["taxonomy"]["categories"]:
        if category["category_id"] == category_id:
            return [t for t in category["themes"] if t["taxonomy_theme_id"] not in mapped]
    return []


# --------------------------------------------------------------------------- formatting


def _fmt_conf(value: float | None) -> str:
    """Norwegian decimal comma, two decimals; a dash when unknown."""
    return DASH if value is None else f"{value:.2f}".replace(".", ",")


def _n(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


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


def _first_run_text(changes: Mapping[str, Any]) -> str:
    themes = _n(changes["counts"]["new"], "tema", "temaer")
    return f"Første kjøring: ingen tidligere temaer å sammenligne med, så alle temaene er nye ({themes})."


def _change_counts_text(changes: Mapping[str, Any]) -> str:
    """E.g. 'Nye: 1 · Vokst: 2 · Krympet: 0 · Uendret: 5 · Slått sammen: 1 · Borte: 0'."""
    return " · ".join(f"{label}: {changes['counts'][kind]}" for kind, label in CHANGE_LABELS.items())


def _listed_changes(changes: Mapping[str, Any]) -> list[tuple[str, list[dict]]]:
    """(kind, entries) for each kind that is listed and has entries, in document order."""
    return [(kind, [c for c in changes["themes"] if c["change"] == kind]) for kind in LISTED_CHANGES
            if any(c["change"] == kind for c in changes["themes"])]


def _change_size_text(change: Mapping[str, Any]) -> str:
    """'8 kort' (new), '5 → 8 kort' (grown, shrunk), 'hadde 6 kort' (merged, retired)."""
    if change["change"] == "new":
        return _n(change["size_after"], "kort", "kort")
    if change["change"] in ("merged", "retired"):
        return f"hadde {_n(change['size_before'], 'kort', 'kort')}"
    return f"{change['size_before']} → {_n(change['size_after'], 'kort', 'kort')}"


def _vote_summary(vote: Mapping[str, Any]) -> str:
    """E.g. 'Påstand 1: 5 grupper · Påstand 2: 3 grupper'."""
    return " · ".join(f"{_choice_label(s['choice'])}: {_groups(s['count'])}" for s in vote["statements"])


# --------------------------------------------------------------------------- markdown


def _md_text(value: Any) -> str:
    """Verbatim text, but with '<' backslash-escaped so card text can never become raw HTML
    when the Markdown is rendered (CommonMark shows '\\<' as a plain '<')."""
    return str(value).replace("\\", "\\\\").replace("<", "\\<")


def _md_cell(value: Any) -> str:
    # A table row is one line and '|' separates cells, so both must be neutralised.
    return " ".join(_md_text(value).split()).replace("|", "\\|")


def _md_inline(value: Any) -> str:
    """Single-line text for headings and list items."""
    return " ".join(_md_text(value).split())


def _md_table(header: list[str], align: list[str], rows: list[list[Any]]) -> list[str]:
    """align: 'l' or 'r' per column."""
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _md_run_line(insights: Mapping[str, Any]) -> str:
    run = insights["run"]
    return (
        f"*innsikt {_md_inline(run['innsikt_version'])} · modell {_md_inline(run['embedding_model'])}"
        f" · parametre {_md_inline(run['params_hash'][:12])} · taksonomi {_md_inline(insights['taxonomy']['id'])}*"
    )


def _md_counts(insights: Mapping[str, Any]) -> list[str]:
    c = insights["run"]["counts"]
    return _md_table(
        ["Kort", "Tildelt", "Uteliggere", "Avvist", "Stemmer"],
        ["r"] * 5,
        [[c["cards"], c["assigned"], c["outlier"], c["rejected"], c["votes"]]],
    )


def _md_workshops(insights: Mapping[str, Any]) -> list[str]:
    rows = [[w["workshop_id"], w["cards"], w["assigned"], w["outlier"], w["rejected"]] for w in insights["workshops"]]
    return _md_table(["Verksted", "Kort", "Tildelt", "Uteliggere", "Avvist"], ["l", "r", "r", "r", "r"], rows)


def _md_category_matrix(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    rows = [
        [c["name"], *(c["per_workshop"].get(w, 0) for w in lk.workshops), c["size"]]
        for c in insights["categories"]
    ]
    header = ["Kategori", *lk.workshops, "Totalt"]
    return _md_table(header, ["l"] + ["r"] * (len(lk.workshops) + 1), rows)


def _md_blockquote(text: str) -> list[str]:
    return ["> " + _md_text(line) if line.strip() else ">" for line in text.splitlines() or [""]]


def _distinctive_text(theme: Mapping[str, Any]) -> str:
    found = theme["breadth"]["distinctive_for"]
    return "" if found is None else f"særpreg for {found['workshop_id']} ({found['cards']} kort, p = {found['p_value']:.3g})"


STANCE_TEXT = {"agreed": "gruppene er enige", "leaning": "flertall, men ikke enighet", "divided": "gruppene er delt"}


def _stance_text(theme: Mapping[str, Any]) -> str:
    vote = theme["vote"]
    return "" if vote is None else f"{STANCE_TEXT[vote['stance']]} ({vote['text']}, {_groups(vote['groups'])})"


def _md_theme(theme: Mapping[str, Any], lk: _Lookup) -> list[str]:
    many = " · **relevant for mange**" if theme["breadth"]["relevant_for_many"] else ""
    many += "".join(f" · {_md_inline(text)}" for text in (_distinctive_text(theme), _stance_text(theme)) if text)
    lines = [f"#### {_md_inline(theme['label'])} ({_n(theme['size'], 'kort', 'kort')})", "",
             f"Bredde: {_breadth_text(theme, len(lk.workshops))} · rang {theme['breadth']['rank']}{many}", ""]
    taxonomy_id = theme["taxonomy_theme_id"]
    if taxonomy_id is None:
        facts = ["Nytt tema, ikke i taksonomien"]
    else:
        facts = [f"Taksonomitema: {_md_inline(lk.taxonomy_theme_names.get(taxonomy_id, taxonomy_id))}"]
    facts.append(f"konfidens {_fmt_conf(theme['confidence'])}")
    facts += [f"{_md_inline(w)}: {n}" for w, n in _ordered_counts(theme["per_workshop"], lk)]
    lines.append(" · ".join(facts))
    if theme["keywords"]:
        lines += ["", "Nøkkelord: " + ", ".join(_md_inline(k) for k in theme["keywords"])]
    for quote in theme["quotes"]:
        card_type = CARD_TYPE_LABELS.get(quote["card_type"], quote["card_type"])
        lines += ["", *_md_blockquote(quote["text"])]
        lines.append(f"> ({_md_inline(quote['card_id'])}, {_md_inline(quote['workshop_id'])}, {_md_inline(card_type)})")
    if theme["subthemes"]:
        lines += ["", "Undertemaer:", ""]
        for sub in theme["subthemes"]:
            headline = f": «{_md_inline(sub['quotes'][0]['text'])}»" if sub["quotes"] else ""
            lines.append(f"- **{_md_inline(sub['label'])}** ({_n(sub['size'], 'kort', 'kort')}){headline}")
    for vote in lk.votes_by_theme.get(theme["taxonomy_theme_id"] or "", []):
        lines += ["", f"Stemmer ({_groups(vote['groups'])}): {_md_inline(_split_text(vote))} – "
                      f"{_md_inline(_vote_summary(vote))}"]
    return lines + [""]


def _md_category(category: Mapping[str, Any], themes: list[dict], lk: _Lookup) -> list[str]:
    lines = [f"### {_md_inline(category['name'])} ({_n(category['size'], 'kort', 'kort')})", ""]
    if not themes:
        lines += ["*Ingen temaer i denne kategorien.*", ""]
    for theme in themes:
        lines += _md_theme(theme, lk)
    return lines


def _md_votes(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    if not insights["votes"]:
        return ["*Ingen stemmer registrert.*", ""]
    rows = []
    for vote in insights["votes"]:
        theme_name = lk.taxonomy_theme_names.get(vote["taxonomy_theme_id"], vote["taxonomy_theme_id"])
        category_name = lk.category_names.get(vote["category_id"], vote["category_id"])
        for s in vote["statements"]:
            statement = s["statement"] if s["statement"] is not None else DASH
            rows.append([category_name, theme_name, vote["groups"], _split_text(vote), _choice_label(s["choice"]),
                         s["count"], statement])
    header = ["Kategori", "Taksonomitema", "Grupper", "Fordeling", "Valg", "Antall", "Påstand"]
    return _md_table(header, ["l", "l", "r", "l", "l", "r", "l"], rows) + [""]


def _md_breadth(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    """All themes by breadth rank: the analysts' list of what was relevant for many."""
    rows = [
        [t["breadth"]["rank"], t["label"], lk.category_names.get(t["category_id"], t["category_id"]),
         t["breadth"]["workshops"], t["breadth"]["groups"], t["voices"], t["size"],
         "ja" if t["breadth"]["relevant_for_many"] else ""]
        for t in _by_breadth(insights["themes"])
    ]
    header = ["Rang", "Tema", "Kategori", "Verksteder", "Grupper", "Unike bidrag", "Kort", "Relevant for mange"]
    return _md_table(header, ["r", "l", "l", "r", "r", "r", "r", "l"], rows) + [""]


def _md_change(change: Mapping[str, Any], lk: _Lookup) -> str:
    text = f"- {_md_inline(lk.theme_name(change['theme_id']))} ({_change_size_text(change)})"
    if change["merged_into"] is not None:
        text += f", gikk inn i «{_md_inline(lk.theme_name(change['merged_into']))}»"
    if change["split_from"]:
        text += ", skilt ut fra " + ", ".join(f"«{_md_inline(lk.theme_name(t))}»" for t in change["split_from"])
    return text


CURATION_TITLE = "Analytikerens beslutninger (curation.yaml)"


def _curation_texts(changes: Mapping[str, Any]) -> list[str]:
    """One line per curation rule applied, e.g. 'linje 13, merge: merged theme-a into theme-b (4 kort)'."""
    return [f"linje {e['line']}, {e['rule']}: {e['detail']} ({_n(e['cards'], 'kort', 'kort')})"
            for e in changes.get("curation", [])]


def _md_changes(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    curated = _curation_texts(insights["changes"])
    return _md_theme_changes(insights, lk) + (
        [f"### {CURATION_TITLE}", "", *(f"- {_md_text(t)}" for t in curated), ""] if curated else [])


def _md_theme_changes(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    changes = insights["changes"]
    lines = [f"## {CHANGES_TITLE}", ""]
    if not changes["since_previous_run"]:
        return lines + [_first_run_text(changes), ""]
    lines += [_change_counts_text(changes), ""]
    listed = _listed_changes(changes)
    if not listed:
        lines += ["*Ingen temaer har endret seg.*", ""]
    for kind, entries in listed:
        lines += [f"### {CHANGE_LABELS[kind]}", "", *(_md_change(c, lk) for c in entries), ""]
    return lines


def render_markdown(insights: dict) -> str:
    """Markdown report: counts, category x workshop table, changes since the previous run, themes with
    quotes, votes."""
    lk = _build_lookup(insights)
    lines = [f"# {REPORT_TITLE}", "", _md_run_line(insights), "", "## Oversikt", ""]
    lines += _md_counts(insights) + [""] + _md_workshops(insights) + [""]
    lines += ["### Kort per kategori og verksted", "",
              "![Kort per kategori og verksted](plots/categories_by_workshop.png)", ""]
    lines += _md_category_matrix(insights, lk) + [""]
    lines += ["### Temaer etter bredde", "",
              "Rangert etter hvor mange verksteder, deretter grupper, som tok opp temaet.", ""]
    lines += _md_breadth(insights, lk)
    lines += ["### Kart over kortene", "", "![Kart over kortene](plots/card_map.png)", ""]
    lines += _md_changes(insights, lk)
    lines += ["## Kategorier", ""]
    for category in _taxonomy_categories(insights):
        lines += _md_category(category, _category_themes(insights, category["category_id"]), lk)
    orphans = _orphan_themes(insights)
    if orphans:
        lines += ["### Temaer uten kjent kategori", ""]
        for theme in orphans:
            lines += _md_theme(theme, lk)
    lines += [f"## {EMERGENT_TITLE}", ""]
    emergent = _emergent_themes(insights)
    if not emergent:
        lines += ["*Ingen nye temaer.*", ""]
    for theme in emergent:
        lines += _md_theme(theme, lk)
    lines += _md_other(insights, lk)
    lines += ["## Stemmer", ""] + _md_votes(insights, lk)
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- html helpers


def _esc(value: Any) -> str:
    """Every data value goes through here: text content and attribute values alike."""
    return html.escape(str(value), quote=True)


def _anchor(prefix: str, ident: str) -> str:
    """Fragment id for an element; escaped because ids come from the data."""
    return _esc(f"{prefix}-{ident}")


def _filter_attrs(workshop_id: str, group_id: str | None) -> str:
    """What the workshop/group filter matches an element on; a card without a group has data-group=""."""
    return f' data-workshop="{_esc(workshop_id)}" data-group="{_esc(group_id or "")}"'


def _count(n: int, scope: str, ident: str = "", workshop_id: str | None = None) -> str:
    """A number the filter recounts from the card table's rows: cards of `scope` `ident` (in `workshop_id`).

    scope: all, status, theme, sub (sub-theme) or cat (category), as counted in SCRIPT."""
    ws = "" if workshop_id is None else f' data-ws="{_esc(workshop_id)}"'
    return f'<span data-n="{scope}" data-id="{_esc(ident)}"{ws}>{_esc(n)}</span>'


def _swatch(workshop_id: str, lk: _Lookup) -> str:
    return f'<span class="swatch ws{lk.colour_index(workshop_id)}" aria-hidden="true"></span>'


def _per_workshop_html(per_workshop: Mapping[str, int], lk: _Lookup, scope: str, ident: str) -> str:
    items = [
        f'<li>{_swatch(w, lk)}{_esc(w)}: <span class="num">{_count(n, scope, ident, w)}</span></li>'
        for w, n in _ordered_counts(per_workshop, lk)
    ]
    return f'<ul class="per-ws">{"".join(items)}</ul>'


CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d8dee4;--panel:#f6f8fa;--accent:#2f5d8a}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--fg);background:#fff;
  font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
.page{max-width:1100px;margin:0 auto;padding:0 24px 48px}
h1{font-size:1.9rem;margin:28px 0 4px}
h2{font-size:1.45rem;margin:40px 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:1.2rem;margin:28px 0 8px}
h4{font-size:1.05rem;margin:0}
a{color:var(--accent)}
.muted,.meta{color:var(--muted)}
.meta{margin:0 0 16px;font-size:.9rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
nav.toc ul{display:flex;flex-wrap:wrap;gap:6px 18px;list-style:none;padding:0;margin:8px 0 0}
.counts{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0;margin:16px 0}
.counts li{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:8px 16px;min-width:120px}
.counts .n{display:block;font-size:1.6rem;font-weight:600;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;margin:8px 0 16px}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{background:var(--panel);font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact{width:auto}
.chart{display:block;max-width:100%;height:auto}
.chart text{font-size:13px;fill:var(--fg)}
.chart .seg-n{font-size:11px}
.chart .track{fill:#eef1f4}
.legend,.per-ws{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;padding:0;margin:8px 0}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em}
.ws0{background:#4e79a7}.ws1{background:#f28e2b}.ws2{background:#59a14f}.ws3{background:#e15759}
.ws4{background:#76b7b2}.ws5{background:#edc948}.ws6{background:#b07aa1}.ws7{background:#9c755f}
.theme{border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:14px 0}
.theme-head{display:flex;justify-content:space-between;align-items:baseline;gap:12px}
.badge{background:var(--panel);border:1px solid var(--line);border-radius:999px;padding:1px 10px;
  font-size:.85rem;white-space:nowrap}
.theme p{margin:6px 0}
.badges{display:flex;flex-wrap:wrap;gap:6px;justify-content:flex-end}
.badge.many{background:#e6f4ea;border-color:#9ccfaa;color:#1a5e2e}
.breadth{font-size:.92rem}
.split-label{font-weight:600}
.statement{font-style:italic;margin:2px 0}
.card-map .pt{stroke-width:1.4}
.card-map .pt:hover{stroke:#1f2328;stroke-width:2.5}
.swatch.hollow{border:1.5px solid var(--muted);background:none}
.vote-list small{display:block;color:var(--muted)}
.kw{display:inline-block;background:#eef3f8;border-radius:4px;padding:0 6px;margin:0 4px 2px 0;font-size:.85rem}
blockquote{margin:10px 0;padding:6px 14px;border-left:3px solid #9fb3c8;background:var(--panel)}
blockquote p{margin:0;white-space:pre-wrap}
blockquote footer{color:var(--muted);font-size:.82rem;margin-top:2px}
.votes{margin-top:10px}
.votes h5{font-size:.95rem;margin:0 0 4px}
.split{display:flex;height:10px;max-width:360px;border-radius:3px;overflow:hidden;background:#eef1f4;margin:4px 0}
.split span{display:block;height:100%}
.vote-list{margin:4px 0;padding-left:18px}
.unmatched{font-size:.9rem}
.changes{margin:4px 0 12px;padding-left:20px}
#kortsok{width:100%;max-width:420px;padding:8px 10px;font:inherit;border:1px solid var(--line);border-radius:6px}
#korttabell td.text{white-space:pre-wrap;min-width:260px}
#korttabell small{display:block;color:var(--muted)}
.run dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}
.run dt{font-weight:600}.run dd{margin:0;word-break:break-all}
[hidden]{display:none!important}
#filter{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:10px 0 6px;
  display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px}
#filter select,#filter button{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;
  background:#fff}
#filter select{max-width:320px}
#filterstatus{flex-basis:100%;margin:0;font-size:.9rem}
#filter.active{background:#fdf8e6}
.subthemes q.headline{display:block}
@media print{#kortsok,#kortteller,nav.toc,#filter select,#filter button,#filter label{display:none}
  #filter{position:static}.theme{break-inside:avoid}}
""".strip()

# The text search of the card table, and the workshop/group filter: it hides the elements whose
# data-workshop/data-group do not match, recounts every [data-n] number from the card table's rows
# (which carry each card's status, theme, sub-theme and category) and hides each [data-scope]
# container (theme, sub-theme, category) left without cards. It writes only textContent, attributes
# and styles, never markup, so the data it reads needs no escaping here.
SCRIPT = """
(function () {
  var input = document.getElementById("kortsok");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#korttabell tbody tr"));
  var counter = document.getElementById("kortteller");
  var bar = document.getElementById("filter");
  var wsSelect = document.getElementById("filter-verksted");
  var groupSelect = document.getElementById("filter-gruppe");
  var status = document.getElementById("filterstatus");
  var SEP = "\\u0000";
  var chosen = {workshop: "", group: null};  // group null: any group; "": cards without a group

  function matches(el) {
    if (chosen.workshop && el.getAttribute("data-workshop") !== chosen.workshop) { return false; }
    return chosen.group === null || !el.hasAttribute("data-group") || el.getAttribute("data-group") === chosen.group;
  }
  function show(el, on) {
    if (el instanceof SVGElement) { el.style.display = on ? "" : "none"; } else { el.hidden = !on; }
  }
  function showCards() {
    var query = input.value.trim().toLowerCase(), shown = 0;
    rows.forEach(function (row) {
      var hit = matches(row) && (!query || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    counter.textContent = "Viser " + shown + " av " + rows.length + " kort";
  }
  function recount() {
    var counts = new Map();
    function add(key) { counts.set(key, (counts.get(key) || 0) + 1); }
    rows.forEach(function (row) {
      if (!matches(row)) { return; }
      var d = row.dataset;
      add("all:"); add("status:" + d.status);
      if (d.status === "rejected") { return; }  // the report counts themes and categories without them
      [["theme", d.theme], ["sub", d.subtheme], ["cat", d.category]].forEach(function (pair) {
        if (pair[1]) { add(pair[0] + ":" + pair[1]); add(pair[0] + ":" + pair[1] + SEP + d.workshop); }
      });
    });
    document.querySelectorAll("[data-n]").forEach(function (el) {
      var perWorkshop = el.hasAttribute("data-ws");
      var n = counts.get(el.dataset.n + ":" + el.dataset.id + (perWorkshop ? SEP + el.dataset.ws : "")) || 0;
      el.textContent = String(n);
      if (perWorkshop) { el.closest("li").hidden = n === 0; }
    });
    document.querySelectorAll("[data-scope]").forEach(function (el) {
      el.hidden = !counts.get(el.dataset.scope + ":" + el.dataset.id);
    });
    return counts.get("all:") || 0;
  }
  function apply() {
    var option = groupSelect.options[groupSelect.selectedIndex];
    chosen.workshop = wsSelect.value;
    chosen.group = groupSelect.value ? option.getAttribute("data-group") : null;
    var n = recount();
    document.querySelectorAll("[data-workshop]").forEach(function (el) {
      // Not the table rows (showCards adds the text search) nor the group chooser's options.
      if (!el.closest("#korttabell") && !el.closest("#filter")) { show(el, matches(el)); }
    });
    document.querySelectorAll(".quotes").forEach(function (box) {
      box.querySelector(".no-quotes").hidden = box.querySelector("blockquote:not([hidden])") !== null;
    });
    showCards();
    var active = chosen.workshop !== "" || chosen.group !== null;
    bar.classList.toggle("active", active);
    status.textContent = active
      ? "Utvalg: " + (chosen.group !== null ? option.textContent : chosen.workshop) + " – " + n + " av " +
        rows.length + " kort. Oversiktsdiagrammet, bredde, unike bidrag og stemmer gjelder hele materialet."
      : "Alle verksteder og grupper: " + rows.length + " kort.";
  }
  function limitGroups() {
    // Only the chosen workshop's groups can be chosen; a group of another workshop is let go.
    var ws = wsSelect.value;
    Array.prototype.forEach.call(groupSelect.options, function (o) {
      if (o.value) { o.hidden = ws !== "" && o.getAttribute("data-workshop") !== ws; }
    });
    if (groupSelect.options[groupSelect.selectedIndex].hidden) { groupSelect.value = ""; }
  }
  wsSelect.addEventListener("change", function () { limitGroups(); apply(); });
  groupSelect.addEventListener("change", function () {
    if (groupSelect.value) {
      wsSelect.value = groupSelect.options[groupSelect.selectedIndex].getAttribute("data-workshop");
    }
    limitGroups(); apply();
  });
  document.getElementById("filter-nullstill").addEventListener("click", function () {
    wsSelect.value = ""; groupSelect.value = ""; limitGroups(); apply();
  });
  input.addEventListener("input", showCards);
  limitGroups(); apply();  // a reloaded page may keep its last choice
})();
""".strip()


# --------------------------------------------------------------------------- html sections


def _html_header(insights: Mapping[str, Any], lk: _Lookup) -> str:
    run, counts = insights["run"], insights["run"]["counts"]
    tiles = [
        ("kort", _count(counts["cards"], "all")),
        ("tildelt", _count(counts["assigned"], "status", "assigned")),
        ("uteliggere", _count(counts["outlier"], "status", "outlier")),
        ("avvist", _count(counts["rejected"], "status", "rejected")),
        ("stemmer", _esc(counts["votes"])),  # a vote is a group's, on a theme, not a card's: not filtered
    ]
    tiles_html = "".join(f'<li><span class="n">{n}</span>{label}</li>' for label, n in tiles)
    rows = "".join(
        f"<tr data-workshop=\"{_esc(w['workshop_id'])}\">"
        f"<td>{_swatch(w['workshop_id'], lk)}{_esc(w['workshop_id'])}</td>"
        f'<td class="num">{_esc(w["cards"])}</td><td class="num">{_esc(w["assigned"])}</td>'
        f'<td class="num">{_esc(w["outlier"])}</td><td class="num">{_esc(w["rejected"])}</td></tr>'
        for w in insights["workshops"]
    )
    return (
        f"<header>\n<h1>{_esc(REPORT_TITLE)}</h1>\n"
        f'<p class="meta">innsikt {_esc(run["innsikt_version"])} · modell <code>{_esc(run["embedding_model"])}</code>'
        f' · taksonomi <code>{_esc(insights["taxonomy"]["id"])}</code>'
        f' · parametre <code title="{_esc(run["params_hash"])}">{_esc(run["params_hash"][:12])}</code></p>\n'
        f'<ul class="counts">{tiles_html}</ul>\n'
        '<table class="compact workshops"><thead><tr><th>Verksted</th><th class="num">Kort</th>'
        '<th class="num">Tildelt</th><th class="num">Uteliggere</th><th class="num">Avvist</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>\n"
        '<nav class="toc" aria-label="Innhold"><ul><li><a href="#oversikt">Oversikt</a></li>'
        '<li><a href="#bredde">Bredde</a></li><li><a href="#kart">Kart</a></li>'
        '<li><a href="#endringer">Endringer</a></li>'
        '<li><a href="#kategorier">Kategorier</a></li>'
        f'<li><a href="#nye-temaer">{_esc(EMERGENT_TITLE)}</a></li>'
        f'<li><a href="#annet-innspill">{_esc(OTHER_TITLE)}</a></li>'
        '<li><a href="#stemmer">Stemmer</a></li><li><a href="#alle-kort">Alle kort</a></li>'
        '<li><a href="#kjoring">Kjøring</a></li></ul></nav>\n</header>'
    )


def _workshop_groups(insights: Mapping[str, Any], lk: _Lookup) -> list[tuple[str, str | None]]:
    """(workshop, group) of the cards, in workshop order, groups sorted, cards without a group last."""
    pairs = {(c["workshop_id"], c["group_id"]) for c in insights["cards"]}
    order = {w: i for i, w in enumerate(lk.workshops)}
    return sorted(pairs, key=lambda p: (order[p[0]], p[1] is None, p[1] or ""))


def _html_filter(insights: Mapping[str, Any], lk: _Lookup) -> str:
    """Workshop and group choosers; SCRIPT makes counts, themes and quotes follow them."""
    workshops = "".join(f'<option value="{_esc(w)}">{_esc(w)}</option>' for w in lk.workshops)
    # A group is a workshop's: the value is an index, the option's data-* what the filter matches.
    groups = "".join(
        f'<option value="{i}"{_filter_attrs(w, g)}>{_esc(w)} · {"uten gruppe" if g is None else _esc(g)}</option>'
        for i, (w, g) in enumerate(_workshop_groups(insights, lk), start=1)
    )
    return (
        '<section id="filter" aria-label="Filter">\n'
        '<label for="filter-verksted">Verksted</label> <select id="filter-verksted">'
        f'<option value="">Alle verksteder</option>{workshops}</select>\n'
        '<label for="filter-gruppe">Gruppe</label> <select id="filter-gruppe">'
        f'<option value="">Alle grupper</option>{groups}</select>\n'
        '<button type="button" id="filter-nullstill">Vis alt</button>\n'
        f'<p id="filterstatus" class="muted" aria-live="polite">Alle verksteder og grupper: '
        f'{_esc(len(insights["cards"]))} kort.</p>\n</section>'
    )


# Chart geometry in SVG user units; the viewBox lets it scale down on narrow screens.
CHART_LABEL_W = 250
CHART_BAR_W = 560
CHART_TOTAL_W = 60
CHART_ROW_H = 30
CHART_BAR_H = 20
CHART_PAD = 6
CHART_LABEL_CHARS = 34
CHART_MIN_SEG_FOR_NUMBER = 22


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _svg_bar_row(index: int, category: Mapping[str, Any], scale: float, lk: _Lookup) -> str:
    y = CHART_PAD + index * CHART_ROW_H
    mid = y + CHART_BAR_H / 2
    name = category["name"]
    parts = [
        f'<g class="bar-row"><text x="{CHART_LABEL_W - 10}" y="{mid:.1f}" dy=".35em" text-anchor="end">'
        f"<title>{_esc(name)}</title>{_esc(_truncate(name, CHART_LABEL_CHARS))}</text>",
        f'<rect class="track" x="{CHART_LABEL_W}" y="{y}" width="{CHART_BAR_W}" height="{CHART_BAR_H}" rx="2"/>',
    ]
    x = float(CHART_LABEL_W)
    for workshop_id, count in _ordered_counts(category["per_workshop"], lk):
        width = count * scale
        fill, ink = lk.colour(workshop_id)
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{CHART_BAR_H}" fill="{fill}">'
            f"<title>{_esc(name)} – {_esc(workshop_id)}: {_esc(_n(count, 'kort', 'kort'))}</title></rect>"
        )
        if width >= CHART_MIN_SEG_FOR_NUMBER:
            parts.append(
                f'<text class="seg-n" x="{x + width / 2:.1f}" y="{mid:.1f}" dy=".35em" text-anchor="middle"'
                f' style="fill:{ink}">{_esc(count)}</text>'
            )
        x += width
    parts.append(f'<text x="{x + 6:.1f}" y="{mid:.1f}" dy=".35em">{_esc(category["size"])}</text></g>')
    return "".join(parts)


def _svg_category_chart(categories: list[dict], lk: _Lookup) -> str:
    """Horizontal stacked bars: one bar per category, one segment per workshop."""
    largest = max([1] + [max(c["size"], sum(c["per_workshop"].values())) for c in categories])
    scale = CHART_BAR_W / largest
    width = CHART_LABEL_W + CHART_BAR_W + CHART_TOTAL_W
    height = 2 * CHART_PAD + len(categories) * CHART_ROW_H - (CHART_ROW_H - CHART_BAR_H)
    rows = "\n".join(_svg_bar_row(i, c, scale, lk) for i, c in enumerate(categories))
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' role="img" aria-labelledby="chart-title">\n'
        '<title id="chart-title">Tildelte kort per kategori, fordelt på verksted</title>\n'
        f"{rows}\n</svg>"
    )


def _html_legend(insights: Mapping[str, Any], lk: _Lookup) -> str:
    cards_by_ws = {w["workshop_id"]: w["cards"] for w in insights["workshops"]}
    items = []
    for w in lk.workshops:
        total = f" ({_esc(_n(cards_by_ws[w], 'kort', 'kort'))})" if w in cards_by_ws else ""
        items.append(f"<li>{_swatch(w, lk)}{_esc(w)}{total}</li>")
    return f'<ul class="legend" aria-label="Verksteder">{"".join(items)}</ul>'


def _html_overview(insights: Mapping[str, Any], lk: _Lookup) -> str:
    return (
        '<section id="oversikt">\n<h2>Oversikt</h2>\n'
        '<p class="muted">Tildelte kort per kategori. Hver farge er ett verksted; tallet til høyre er totalen.</p>\n'
        f"{_svg_category_chart(insights['categories'], lk)}\n{_html_legend(insights, lk)}\n"
        f"{_html_breadth(insights, lk)}\n</section>"
    )


def _html_breadth(insights: Mapping[str, Any], lk: _Lookup) -> str:
    """Every theme by breadth rank: how many workshops and groups raised it."""
    themes = _by_breadth(insights["themes"])
    if not themes:
        return ""
    rows = "".join(
        f'<tr data-scope="theme" data-id="{_esc(t["theme_id"])}"><td class="num">{_esc(t["breadth"]["rank"])}</td>'
        f'<td><a href="#{_anchor("tema", t["theme_id"])}">{_esc(t["label"])}</a>'
        + (' <span class="badge many">relevant for mange</span>' if t["breadth"]["relevant_for_many"] else "")
        + f'</td><td>{_esc(lk.category_names.get(t["category_id"], t["category_id"]))}</td>'
        f'<td class="num">{_esc(t["breadth"]["workshops"])} av {len(lk.workshops)}</td>'
        f'<td class="num">{_esc(t["breadth"]["groups"])}</td><td class="num">{_esc(t["voices"])}</td>'
        f'<td class="num">{_count(t["size"], "theme", t["theme_id"])}</td></tr>'
        for t in themes
    )
    return (
        '<h3 id="bredde">Temaer etter bredde</h3>\n'
        '<p class="muted">Rangert etter hvor mange verksteder, deretter grupper, som tok opp temaet. '
        "«Relevant for mange»: tatt opp i minst halvparten av verkstedene, av minst like mange unike bidrag "
        "som et gjennomsnittlig tema. «Særpreg for» et verksted: tatt opp der langt oftere enn i de andre "
        "(Fishers eksakte test).</p>\n"
        '<table class="breadth-table"><thead><tr><th class="num">Rang</th><th>Tema</th><th>Kategori</th>'
        '<th class="num">Verksteder</th><th class="num">Grupper</th><th class="num">Unike bidrag</th>'
        f'<th class="num">Kort</th></tr></thead><tbody>{rows}</tbody></table>'
    )


# Card map geometry in SVG user units.
MAP_W = 1040
MAP_H = 600
MAP_PAD = 16
MAP_R = 4.5


def _map_scale(points: list[tuple[float, float]]):
    """A function from data (x, y) to SVG (x, y) keeping the aspect ratio; y grows upwards."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x_span, y_span = max(max(xs) - min(xs), 1e-9), max(max(ys) - min(ys), 1e-9)
    # One scale for both axes: distances on the map mean the same in every direction.
    scale = min((MAP_W - 2 * MAP_PAD) / x_span, (MAP_H - 2 * MAP_PAD) / y_span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return lambda x, y: (MAP_W / 2 + (x - cx) * scale, MAP_H / 2 - (y - cy) * scale)


def _svg_point(card: Mapping[str, Any], xy: tuple[float, float], colour: str, lk: _Lookup) -> str:
    outlier = card["status"] == "outlier"
    fill = "none" if outlier else colour
    category = lk.category_names.get(card["category_id"] or "", "uten kategori")
    tooltip = f"{card['card_id']} · {card['workshop_id']} · {category}: {card['text']}"
    return (f'<circle class="pt" cx="{xy[0]:.1f}" cy="{xy[1]:.1f}" r="{MAP_R}" fill="{fill}" stroke="{colour}"'
            f"{_filter_attrs(card['workshop_id'], card['group_id'])}>"
            f"<title>{_esc(tooltip)}</title></circle>")


def _svg_card_map(insights: Mapping[str, Any], lk: _Lookup) -> str:
    colours = category_colours(c["category_id"] for c in insights["categories"])
    placed = [c for c in insights["cards"] if c["position"] is not None]
    to_svg = _map_scale([(c["position"]["x"], c["position"]["y"]) for c in placed])
    # Outliers first, so the coloured (assigned) points are drawn on top.
    ordered = sorted(placed, key=lambda c: (c["status"] != "outlier", c["card_id"]))
    points = "\n".join(
        _svg_point(c, to_svg(c["position"]["x"], c["position"]["y"]),
                   colours.get(c["category_id"] or "", NO_CATEGORY_COLOUR), lk)
        for c in ordered
    )
    labels = "\n".join(
        f'<text class="map-label" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" paint-order="stroke" stroke="#fff" '
        f'stroke-width="3" font-size="12">{_esc(label)}</text>'
        for label, (x, y) in ((label, to_svg(*centre)) for label, centre in theme_centres(insights))
    )
    return (
        f'<svg class="chart card-map" viewBox="0 0 {MAP_W} {MAP_H}" width="{MAP_W}" height="{MAP_H}"'
        ' role="img" aria-labelledby="map-title">\n'
        '<title id="map-title">Kortene i to dimensjoner, farget etter kategori, med temaene midt i kortene sine</title>\n'
        f'<rect class="track" x="0" y="0" width="{MAP_W}" height="{MAP_H}" rx="6"/>\n{points}\n{labels}\n</svg>'
    )


MAP_LABELS = 12  # the largest themes are named on the map; more would cover the points


def theme_centres(insights: Mapping[str, Any]) -> list[tuple[str, tuple[float, float]]]:
    """(label, centre on the card map) of the MAP_LABELS largest themes. The centre is the card nearest to
    the mean position of the theme's cards, so a label always sits on its own cards."""
    positions: dict[str, list[tuple[float, float]]] = {}
    for card in insights["cards"]:
        if card["position"] is not None and card["theme_id"] is not None:
            positions.setdefault(card["theme_id"], []).append((card["position"]["x"], card["position"]["y"]))
    largest = sorted(insights["themes"], key=lambda t: (-t["size"], t["theme_id"]))[:MAP_LABELS]
    centres = []
    for theme in largest:
        points = positions.get(theme["theme_id"])
        if points:
            mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
            centres.append((theme["label"], min(points, key=lambda p: ((p[0] - mx) ** 2 + (p[1] - my) ** 2, p))))
    return centres


def _html_map_legend(insights: Mapping[str, Any]) -> str:
    colours = category_colours(c["category_id"] for c in insights["categories"])
    placed = [c for c in insights["cards"] if c["position"] is not None]
    counts = {cid: sum(1 for c in placed if c["category_id"] == cid) for cid in colours}
    items = [
        f'<li><span class="swatch" style="background:{colours[c["category_id"]]}" aria-hidden="true"></span>'
        f'{_esc(c["name"])} ({_esc(counts[c["category_id"]])})</li>'
        for c in insights["categories"]
    ]
    items.append('<li><span class="swatch hollow" aria-hidden="true"></span>hul sirkel: uteligger</li>')
    return f'<ul class="legend" aria-label="Kategorier">{"".join(items)}</ul>'


def _html_map(insights: Mapping[str, Any], lk: _Lookup) -> str:
    if not any(c["position"] is not None for c in insights["cards"]):
        return '<section id="kart">\n<h2>Kart over kortene</h2>\n<p class="muted">Ingen kort å vise.</p>\n</section>'
    return (
        '<section id="kart">\n<h2>Kart over kortene</h2>\n'
        '<p class="muted">Hvert punkt er ett kort; kort som sier noe likt ligger nær hverandre '
        "(UMAP av embeddingene, der kortene i et tema også trekkes mot hverandre, så temaene vises som grupper; "
        "de største temaene står ved kortene sine). Hold musepekeren over et punkt for å lese kortet. "
        "Avviste kort er ikke med.</p>\n"
        f"{_svg_card_map(insights, lk)}\n{_html_map_legend(insights)}\n</section>"
    )


def _html_theme_ref(theme_id: str, lk: _Lookup) -> str:
    """A theme's label, linked to its article when it is a theme of this run."""
    name = _esc(lk.theme_name(theme_id))
    return f'<a href="#{_anchor("tema", theme_id)}">{name}</a>' if theme_id in lk.theme_labels else name


def _html_change(change: Mapping[str, Any], lk: _Lookup) -> str:
    size = _esc(_change_size_text(change))
    text = f'{_html_theme_ref(change["theme_id"], lk)} <span class="muted">({size})</span>'
    if change["merged_into"] is not None:
        text += f", gikk inn i {_html_theme_ref(change['merged_into'], lk)}"
    if change["split_from"]:
        text += ", skilt ut fra " + ", ".join(_html_theme_ref(t, lk) for t in change["split_from"])
    return f"<li>{text}</li>"


def _html_changes(insights: Mapping[str, Any], lk: _Lookup) -> str:
    changes = insights["changes"]
    head = f'<section id="endringer">\n<h2>{_esc(CHANGES_TITLE)}</h2>\n'
    curated = _curation_texts(changes)
    if curated:
        head += (f'<h3>{_esc(CURATION_TITLE)}</h3>\n<ul class="curation">'
                 + "".join(f"<li>{_esc(t)}</li>" for t in curated) + "</ul>\n")
    if not changes["since_previous_run"]:
        return f"{head}<p>{_esc(_first_run_text(changes))}</p>\n</section>"
    lists = "".join(
        f'<h3>{_esc(CHANGE_LABELS[kind])}</h3>\n'
        f'<ul class="changes">{"".join(_html_change(c, lk) for c in entries)}</ul>\n'
        for kind, entries in _listed_changes(changes)
    ) or '<p class="muted">Ingen temaer har endret seg.</p>\n'
    return f'{head}<p class="change-counts">{_esc(_change_counts_text(changes))}</p>\n{lists}</section>'


def _html_quotes(quotes: list[dict], lk: _Lookup) -> str:
    if not quotes:
        return '<p class="muted">Ingen sitater.</p>'
    items = "".join(
        f"<blockquote{_filter_attrs(q['workshop_id'], lk.card_groups.get(q['card_id']))}><p>{_esc(q['text'])}</p>"
        f"<footer>{_esc(q['card_id'])} · {_esc(q['workshop_id'])}"
        f" · {_esc(CARD_TYPE_LABELS.get(q['card_type'], q['card_type']))}</footer></blockquote>"
        for q in quotes
    )
    # The note is shown by the filter when it hides every quote of the theme.
    return f'<div class="quotes">{items}<p class="muted no-quotes" hidden>Ingen sitater fra utvalget.</p></div>'


def _html_split_bar(vote: Mapping[str, Any]) -> str:
    total = sum(s["count"] for s in vote["statements"])
    if total == 0:
        return ""
    segments = "".join(
        f'<span style="width:{100 * s["count"] / total:.1f}%;background:{VOTE_COLOURS[i % len(VOTE_COLOURS)]}"'
        f' title="{_esc(_choice_label(s["choice"]))}: {_esc(_groups(s["count"]))}"></span>'
        for i, s in enumerate(vote["statements"])
    )
    return f'<div class="split" aria-hidden="true">{segments}</div>'


def _html_vote_workshops(statement: Mapping[str, Any], lk: _Lookup) -> str:
    """Per-workshop counts of one choice, so analysts see where workshops differ."""
    counts = _ordered_counts(statement["per_workshop"], lk)
    if not counts:
        return ""
    return "<small>" + ", ".join(f"{_esc(w)}: {_esc(n)}" for w, n in counts) + "</small>"


def _html_vote_detail(vote: Mapping[str, Any], lk: _Lookup) -> str:
    # Agree/disagree votes are on one statement: print it once, not once per option.
    texts = {s["statement"] for s in vote["statements"]}
    shared = texts.pop() if len(texts) == 1 else None
    items = "".join(
        f'<li><span class="swatch" style="background:{VOTE_COLOURS[i % len(VOTE_COLOURS)]}" aria-hidden="true">'
        f"</span><strong>{_esc(_choice_label(s['choice']))}:</strong> {_esc(_groups(s['count']))}"
        + (f" – «{_esc(s['statement'])}»" if s["statement"] is not None and shared is None else "")
        + _html_vote_workshops(s, lk)
        + "</li>"
        for i, s in enumerate(vote["statements"])
    )
    split_class = _esc(vote["split"]["label"])
    summary = (f'<p class="vote-summary"><span class="split-label {split_class}">{_esc(_split_text(vote))}</span>'
               f" · {_esc(_vote_summary(vote))}</p>")
    statement = f'<p class="statement">«{_esc(shared)}»</p>' if shared is not None else ""
    return f'{statement}{summary}{_html_split_bar(vote)}<ul class="vote-list">{items}</ul>'


def _html_theme_votes(theme: Mapping[str, Any], lk: _Lookup) -> str:
    votes = lk.votes_by_theme.get(theme["taxonomy_theme_id"] or "", [])
    return "".join(
        f'<div class="votes"><h5>Stemmer ({_esc(_groups(v["groups"]))} stemte)</h5>{_html_vote_detail(v, lk)}</div>'
        for v in votes
    )


def _html_theme_badges(theme: Mapping[str, Any]) -> str:
    many = '<span class="badge many">relevant for mange</span>' if theme["breadth"]["relevant_for_many"] else ""
    many += "".join(f'<span class="badge">{_esc(text)}</span>'
                    for text in (_distinctive_text(theme), _stance_text(theme)) if text)
    size = _count(theme["size"], "theme", theme["theme_id"])
    return (f'<span class="badges">{many}<span class="badge">{size} kort</span>'
            f'<span class="badge">{_esc(_n(theme["voices"], "unikt bidrag", "unike bidrag"))}</span></span>')


def _html_subthemes(subthemes: list[dict], lk: _Lookup) -> str:
    """What distinct things the theme's cards say: label, size and headline quote of each sub-theme."""
    if not subthemes:
        return ""
    items = "".join(
        f'<li id="{_anchor("tema", sub["theme_id"])}" data-scope="sub" data-id="{_esc(sub["theme_id"])}">'
        f'<strong>{_esc(sub["label"])}</strong> '
        f'<span class="muted">({_count(sub["size"], "sub", sub["theme_id"])} kort)</span>'
        + "".join(f'<q class="headline"{_filter_attrs(q["workshop_id"], lk.card_groups.get(q["card_id"]))}>'
                  f'{_esc(q["text"])}</q>' for q in sub["quotes"][:1]) + "</li>"
        for sub in subthemes
    )
    return f'<div class="subthemes"><p>Undertemaer:</p><ul>{items}</ul></div>'


def _html_theme(theme: Mapping[str, Any], lk: _Lookup) -> str:
    taxonomy_id = theme["taxonomy_theme_id"]
    if taxonomy_id is None:
        mapped = '<span class="muted">nytt tema, ikke i taksonomien</span>'
    else:
        name = lk.taxonomy_theme_names.get(taxonomy_id, taxonomy_id)
        mapped = f'<strong>{_esc(name)}</strong> <span class="muted">({_esc(taxonomy_id)})</span>'
    keywords = "".join(f'<span class="kw">{_esc(k)}</span>' for k in theme["keywords"])
    parts = [
        f'<article class="theme" id="{_anchor("tema", theme["theme_id"])}" data-scope="theme"'
        f' data-id="{_esc(theme["theme_id"])}">',
        f'<div class="theme-head"><h4>{_esc(theme["label"])}</h4>{_html_theme_badges(theme)}</div>',
        f"<p>Taksonomitema: {mapped} · konfidens {_esc(_fmt_conf(theme['confidence']))}"
        f' <span class="muted">· tema-id {_esc(theme["theme_id"])}</span></p>',
        f'<p class="breadth">Bredde: {_esc(_breadth_text(theme, len(lk.workshops)))}'
        f' <span class="muted">· rang {_esc(theme["breadth"]["rank"])}</span></p>',
        f'<p class="keywords">{keywords}</p>' if keywords else "",
        _per_workshop_html(theme["per_workshop"], lk, "theme", theme["theme_id"]),
        _html_quotes(theme["quotes"], lk),
        _html_subthemes(theme["subthemes"], lk),
        _html_theme_votes(theme, lk),
        "</article>",
    ]
    return "\n".join(p for p in parts if p)


def _html_unmatched(insights: Mapping[str, Any], category_id: str) -> str:
    """Taxonomy themes with no matching cards are findings too (nobody wrote about them)."""
    unmatched = _unmatched_taxonomy_themes(insights, category_id)
    if not unmatched:
        return ""
    names = ", ".join(_esc(t["name"]) for t in unmatched)
    return f'<p class="unmatched muted">Taksonomitemaer uten kort: {names}</p>'


def _html_category(insights: Mapping[str, Any], category: Mapping[str, Any], lk: _Lookup) -> str:
    themes = _category_themes(insights, category["category_id"])
    body = "\n".join(_html_theme(t, lk) for t in themes) or '<p class="muted">Ingen temaer i denne kategorien.</p>'
    parts = [
        f'<section class="category" id="{_anchor("kategori", category["category_id"])}" data-scope="cat"'
        f' data-id="{_esc(category["category_id"])}">',
        f'<h3>{_esc(category["name"])} <span class="muted">· '
        f'{_count(category["size"], "cat", category["category_id"])} kort</span></h3>',
        _per_workshop_html(category["per_workshop"], lk, "cat", category["category_id"]),
        body,
        _html_unmatched(insights, category["category_id"]),
        "</section>",
    ]
    return "\n".join(p for p in parts if p)


def _html_categories(insights: Mapping[str, Any], lk: _Lookup) -> str:
    parts = [_html_category(insights, c, lk) for c in _taxonomy_categories(insights)]
    orphans = _orphan_themes(insights)
    if orphans:
        parts.append("<h3>Temaer uten kjent kategori</h3>\n" + "\n".join(_html_theme(t, lk) for t in orphans))
    return '<section id="kategorier">\n<h2>Kategorier</h2>\n' + "\n".join(parts) + "\n</section>"


def _html_emergent(insights: Mapping[str, Any], lk: _Lookup) -> str:
    themes = _emergent_themes(insights)
    body = "\n".join(_html_theme(t, lk) for t in themes) or '<p class="muted">Ingen nye temaer.</p>'
    return (
        f'<section id="nye-temaer">\n<h2>{_esc(EMERGENT_TITLE)}</h2>\n'
        '<p class="muted">Temaer som ikke passer godt med noe tema i taksonomien.</p>\n'
        f"{body}\n</section>"
    )


OTHER_TITLE = "Annet innspill"
OTHER_TEXT = ("Kort som ikke sikkert hører til noe tema: kartleggingen er usikker og ingen gruppe av like kort "
              "støtter den, eller kortet ligger langt fra alle nye temaer. De står her i stedet for å tvinges inn "
              "i et tema.")


def _other_input(insights: Mapping[str, Any]) -> list[dict]:
    return sorted((c for c in insights["cards"] if c["status"] == "outlier"),
                  key=lambda c: (c["workshop_id"], c["card_id"]))


def _html_other(insights: Mapping[str, Any], lk: _Lookup) -> str:
    cards = _other_input(insights)
    items = "".join(
        f"<li{_filter_attrs(c['workshop_id'], c['group_id'])}>{_esc(c['text'])}"
        f" <span class=\"muted\">({_esc(c['card_id'])} · {_esc(c['workshop_id'])}"
        f" · nærmest {_esc(lk.taxonomy_theme_names.get(c['taxonomy_theme_id'] or '', 'intet tema i taksonomien'))})"
        "</span></li>"
        for c in cards
    )
    body = f"<details><summary>Vis kortene</summary><ul>{items}</ul></details>" if cards else ""
    return (f'<section id="annet-innspill">\n<h2>{_esc(OTHER_TITLE)} '
            f'<span class="muted">· {_count(len(cards), "status", "outlier")} kort</span></h2>\n'
            f'<p class="muted">{_esc(OTHER_TEXT)}</p>\n{body}\n</section>')


def _md_other(insights: Mapping[str, Any], lk: _Lookup) -> list[str]:
    cards = _other_input(insights)
    lines = [f"## {OTHER_TITLE} ({_n(len(cards), 'kort', 'kort')})", "", OTHER_TEXT, ""]
    for c in cards:
        nearest = lk.taxonomy_theme_names.get(c["taxonomy_theme_id"] or "", "intet tema i taksonomien")
        lines.append(f"- {_md_inline(c['text'])} ({_md_inline(c['card_id'])}, {_md_inline(c['workshop_id'])}, "
                     f"nærmest {_md_inline(nearest)})")
    return lines + [""]


def _html_votes(insights: Mapping[str, Any], lk: _Lookup) -> str:
    if not insights["votes"]:
        return '<section id="stemmer">\n<h2>Stemmer</h2>\n<p class="muted">Ingen stemmer registrert.</p>\n</section>'
    rows = "".join(
        f'<tr><td>{_esc(lk.category_names.get(v["category_id"], v["category_id"]))}</td>'
        f'<td>{_esc(lk.taxonomy_theme_names.get(v["taxonomy_theme_id"], v["taxonomy_theme_id"]))}</td>'
        f'<td class="num">{_esc(v["groups"])}</td><td>{_html_vote_detail(v, lk)}</td></tr>'
        for v in insights["votes"]
    )
    return (
        '<section id="stemmer">\n<h2>Stemmer</h2>\n'
        '<p class="muted">Hvilken påstand gruppene valgte for hvert taksonomitema.</p>\n'
        '<table><thead><tr><th>Kategori</th><th>Taksonomitema</th><th class="num">Grupper</th>'
        f"<th>Fordeling</th></tr></thead><tbody>{rows}</tbody></table>\n</section>"
    )


def _html_status_cell(card: Mapping[str, Any]) -> str:
    notes = []
    if card["reason"]:
        notes.append(f"<small>{_esc(card['reason'])}</small>")
    if card["duplicate_of"]:
        notes.append(f"<small>duplikat av {_esc(card['duplicate_of'])}</small>")
    return f"{_esc(STATUS_LABELS.get(card['status'], card['status']))}{''.join(notes)}"


def _html_theme_cell(card: Mapping[str, Any], lk: _Lookup) -> str:
    theme_id = card["theme_id"]
    if theme_id is None:
        return DASH
    label = lk.theme_labels.get(theme_id)
    if label is None:
        return _esc(theme_id)
    return f'<a href="#{_anchor("tema", theme_id)}">{_esc(label)}</a>'


def _html_card_row(card: Mapping[str, Any], lk: _Lookup) -> str:
    category_id = card["category_id"]
    category = DASH if category_id is None else lk.category_names.get(category_id, category_id)
    card_type = CARD_TYPE_LABELS.get(card["card_type"], card["card_type"])
    # What the filter counts and matches by; a null id as "".
    data = "".join(f' data-{name}="{_esc(card[key] or "")}"' for name, key in (
        ("status", "status"), ("theme", "theme_id"), ("subtheme", "subtheme_id"), ("category", "category_id")))
    return (
        f"<tr{_filter_attrs(card['workshop_id'], card['group_id'])}{data}>"
        f"<td>{_esc(card['card_id'])}</td><td>{_esc(card['workshop_id'])}</td><td>{_esc(card_type)}</td>"
        f"<td>{_html_status_cell(card)}</td><td>{_html_theme_cell(card, lk)}</td><td>{_esc(category)}</td>"
        f'<td class="num">{_esc(_fmt_conf(card["confidence"]))}</td><td class="text">{_esc(card["text"])}</td></tr>'
    )


def _html_cards(insights: Mapping[str, Any], lk: _Lookup) -> str:
    cards = insights["cards"]
    rows = "\n".join(_html_card_row(c, lk) for c in cards)
    return (
        '<section id="alle-kort">\n<h2>Alle kort</h2>\n'
        '<p><label for="kortsok">Søk i kortene</label><br>'
        '<input id="kortsok" type="search" autocomplete="off"'
        ' placeholder="Filtrer på tekst, tema, verksted, status …"></p>\n'
        f'<p id="kortteller" class="muted" aria-live="polite">Viser {len(cards)} av {len(cards)} kort</p>\n'
        '<table id="korttabell"><thead><tr><th>Kort-id</th><th>Verksted</th><th>Type</th><th>Status</th>'
        '<th>Tema</th><th>Kategori</th><th class="num">Konfidens</th><th>Tekst</th></tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table>\n</section>"
    )


def _html_run(insights: Mapping[str, Any]) -> str:
    run = insights["run"]
    inputs = "".join(
        f"<tr><td>{_esc(i['path'])}</td><td>{_esc(i['kind'])}</td><td class=\"num\">{_esc(i['rows'])}</td>"
        f"<td><code>{_esc(i['sha256'])}</code></td></tr>"
        for i in run["inputs"]
    )
    packages = ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in sorted(run["package_versions"].items()))
    return (
        '<section id="kjoring" class="run">\n<h2>Kjøring</h2>\n<dl>'
        f"<dt>innsikt</dt><dd>{_esc(run['innsikt_version'])}</dd>"
        f"<dt>Skjemaversjon</dt><dd>{_esc(insights['schema_version'])}</dd>"
        f"<dt>Embeddingmodell</dt><dd>{_esc(run['embedding_model'])}</dd>"
        f"<dt>Parametre (SHA-256)</dt><dd><code>{_esc(run['params_hash'])}</code></dd>"
        f"<dt>Taksonomi</dt><dd>{_esc(insights['taxonomy']['id'])}</dd>"
        f"<dt>Pakker</dt><dd>{packages or DASH}</dd></dl>\n"
        '<table><thead><tr><th>Inndata</th><th>Type</th><th class="num">Rader</th><th>SHA-256</th></tr></thead>'
        f"<tbody>{inputs}</tbody></table>\n</section>"
    )


def render_html(insights: dict) -> str:
    """One self-contained, offline HTML5 page (inline CSS, SVG and JS; no external resources)."""
    lk = _build_lookup(insights)
    body = "\n".join(
        [
            _html_header(insights, lk),
            "<main>",
            _html_filter(insights, lk),
            _html_overview(insights, lk),
            _html_map(insights, lk),
            _html_changes(insights, lk),
            _html_categories(insights, lk),
            _html_emergent(insights, lk),
            _html_other(insights, lk),
            _html_votes(insights, lk),
            _html_cards(insights, lk),
            "</main>",
            _html_run(insights),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="nb">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(REPORT_TITLE)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
        f'<body>\n<div class="page">\n{body}\n</div>\n<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n'
    )
