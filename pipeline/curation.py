"""Curation: an analyst's decisions on themes and cards, kept in `configs/curation.yaml` and applied on every run.

Rules name stable ids (theme ids from the registry, card ids) and are applied in file order by the
map stage, between the card mapping and the theme hierarchy:

    rules:
      - rename: {theme: theme-ab12, label: Trygg skolevei}
      - merge: {themes: [theme-cd34], into: theme-ab12}
      - split: {theme: theme-ab12, new_id: theme-ab12-buss, label: Skolebuss, keyword: buss}  # or cards: [...]
      - move: {card: osl-004, to: theme-ef56}        # a topic or a taxonomy theme
      - pin: {theme: theme-ef56, taxonomy_theme: oppvekst-skole}
      - emergent: {theme: theme-gh78}
      - exclude: {card: osl-009, reason: test card}

A card a rule places (moved, merged, split off, in a pinned or emergent theme) follows its theme's
placement, and a curated topic is shown however few cards it holds: every decision holds on a
rerun. A rule that no longer matches the run (a theme merged away or retired, a card not in the
run) is an error naming its line, never dropped. Pure: no I/O beyond `load_curation` and `append_rule`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml
from pydantic import ValidationError, model_validator

from pipeline.errors import InnsiktError
from pipeline.ids import EMERGENT, GROUP_PREFIX
from pipeline.params import Strict
from pipeline.yaml_io import read_yaml, yaml_line
from pipeline.records import STATUS_REJECTED
from pipeline.taxonomy import Taxonomy

EXCLUDED_REASON = "excluded"  # the card's rejection reason in the report: "excluded: <reason>"


class CurationError(InnsiktError):
    """A curation file that does not parse, or a rule that does not match the run; names file and line."""


class Rename(Strict):
    theme: str
    label: str


class Merge(Strict):
    themes: list[str]
    into: str


class Split(Strict):
    theme: str
    new_id: str
    label: str
    cards: Optional[list[str]] = None
    keyword: Optional[str] = None

    @model_validator(mode="after")
    def _one_selector(self):
        if (self.cards is None) == (self.keyword is None):
            raise ValueError("give exactly one of 'cards' and 'keyword'")
        return self


class Move(Strict):
    card: str
    to: str


class Pin(Strict):
    theme: str
    taxonomy_theme: str


class Emergent(Strict):
    theme: str


class Exclude(Strict):
    card: str
    reason: str = "analyst"


KINDS = {"rename": Rename, "merge": Merge, "split": Split, "move": Move, "pin": Pin, "emergent": Emergent,
         "exclude": Exclude}


class Rule(Strict):
    rename: Optional[Rename] = None
    merge: Optional[Merge] = None
    split: Optional[Split] = None
    move: Optional[Move] = None
    pin: Optional[Pin] = None
    emergent: Optional[Emergent] = None
    exclude: Optional[Exclude] = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a rule is exactly one of {list(KINDS)}; found {given}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def body(self):
        return getattr(self, self.kind)


class CurationFile(Strict):
    rules: list[Rule] = []


@dataclass(frozen=True)
class Curation:
    path: str
    rules: tuple[Rule, ...] = ()
    lines: tuple[int, ...] = ()  # 1-based line of each rule in the file


def load_curation(path: Path | None) -> Curation:
    """The rules of a curation file; no file (None or absent) means no rules."""
    if path is None or not Path(path).exists():
        return Curation(str(path))
    path = Path(path)
    raw, text = read_yaml(path, CurationError, "curation rules")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise CurationError(f"{path}: expected a mapping with 'rules', found {type(raw).__name__}")
    try:
        parsed = CurationFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-after"))
            line = yaml_line(text, loc)
            what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{path}, line {line}: " if line else f"{path}: ")
            problems[-1] += f"{'.'.join(str(p) for p in loc)}={err.get('input')!r}: {what}"
        raise CurationError("; ".join(problems)) from exc
    lines = tuple(yaml_line(text, ("rules", k)) or 0 for k in range(len(parsed.rules)))
    return Curation(str(path), tuple(parsed.rules), lines)


def append_rule(path: Path, kind: str, **fields) -> Rule:
    """Add one rule at the end of the file (created when absent), keeping its text and comments."""
    try:
        rule = Rule.model_validate({kind: {k: v for k, v in fields.items() if v is not None}})
    except ValidationError as exc:
        raise CurationError(f"{kind}: {exc.errors()[0]['msg']}") from exc
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text:
        load_curation(path)  # refuse to append to a broken file
    if "rules:" not in text:
        text += ("" if not text or text.endswith("\n") else "\n") + "rules:\n"
    text = text.replace("rules: []", "rules:")
    body = yaml.safe_dump(rule.body.model_dump(exclude_defaults=True), allow_unicode=True, default_flow_style=True,
                          sort_keys=False, width=10**6).strip()
    path.write_text(text + ("" if text.endswith("\n") else "\n") + f"  - {kind}: {body}\n", encoding="utf-8")
    load_curation(path)  # what was written reads back
    return rule


def _set(frame: pd.DataFrame, i, **values) -> None:
    """Set cells of row `i` (None: the column's missing value)."""
    for column, value in values.items():
        frame.at[i, column] = value


@dataclass
class Outcome:
    """What the rules did, for the map stage (to settle placements) and the report."""

    pinned: dict[str, str | None] = field(default_factory=dict)  # topic -> taxonomy theme, None = emergent
    followers: set[str] = field(default_factory=set)  # cards placed where their topic sits
    keep: set[str] = field(default_factory=set)  # curated topics: shown however small
    late_renames: dict[str, tuple[int, str]] = field(default_factory=dict)  # hierarchy theme -> (line, label)
    log: list[dict] = field(default_factory=list)  # line, rule, target, detail, cards


def apply_rules(curation: Curation, topics: pd.DataFrame, card_map: pd.DataFrame, texts: dict[str, str],
                taxonomy: Taxonomy, gone: dict[str, str] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, Outcome]:
    """(topics, card map, outcome) after the rules, in file order.

    `topics`: the cluster stage's topics (theme_id, cluster, label, keywords, size); `card_map`: one
    row per card, its topic in `theme_id`; `texts`: normalised text by card id (split by keyword);
    `gone`: previous theme id -> what became of it ("merged into theme-x", "retired"), for errors.
    """
    gone = gone or {}
    topics, card_map = topics.copy(), card_map.copy()
    taxonomy_ids = {t.id for t in taxonomy.themes}
    category_of = {t.id: t.category_id for t in taxonomy.themes}
    row_of = {c: i for i, c in enumerate(card_map["card_id"])}
    out = Outcome()
    problems = []

    def error(line: int, kind: str, message: str) -> None:
        problems.append(f"{curation.path}, line {line}: {kind}: {message}")

    def topic_ids() -> set[str]:
        return set(topics["theme_id"])

    def missing_theme(theme: str) -> str:
        fate = gone.get(theme)
        return f"theme {theme!r} is not a theme of this run" + (f" ({fate})" if fate else " (unknown id)")

    def live_card(line, kind, card) -> int | None:
        if card not in row_of:
            error(line, kind, f"card {card!r} is not in this run")
            return None
        i = row_of[card]
        if card_map.at[i, "status"] == STATUS_REJECTED:
            error(line, kind, f"card {card!r} is rejected in this run (or excluded by an earlier rule)")
            return None
        return i

    def log(line, kind, target, detail, cards=0):
        out.log.append({"line": line, "rule": kind, "target": target, "detail": detail, "cards": int(cards)})

    for rule, line in zip(curation.rules, curation.lines):
        kind, body = rule.kind, rule.body
        if kind == "rename":
            if body.theme in topic_ids():
                topics.loc[topics["theme_id"] == body.theme, "label"] = body.label
                log(line, kind, body.theme, f"renamed to {body.label!r}", (card_map["theme_id"] == body.theme).sum())
            elif body.theme in taxonomy_ids or body.theme.startswith(GROUP_PREFIX):
                out.late_renames[body.theme] = (line, body.label)  # a taxonomy theme or group: checked later
            else:
                error(line, kind, missing_theme(body.theme))
        elif kind == "merge":
            absent = [t for t in [body.into, *body.themes] if t not in topic_ids()]
            if absent:
                error(line, kind, "; ".join(missing_theme(t) for t in absent))
                continue
            moved = card_map["theme_id"].isin(body.themes)
            card_map.loc[moved, "theme_id"] = body.into
            out.followers |= set(card_map.loc[card_map["theme_id"] == body.into, "card_id"])
            topics = topics[~topics["theme_id"].isin(body.themes)].reset_index(drop=True)
            out.keep.add(body.into)
            log(line, kind, body.into, f"merged {', '.join(body.themes)} into {body.into}", moved.sum())
        elif kind == "split":
            if body.theme not in topic_ids():
                error(line, kind, missing_theme(body.theme))
                continue
            if body.new_id in topic_ids() or body.new_id in taxonomy_ids:
                error(line, kind, f"new_id {body.new_id!r} is already a theme of this run")
                continue
            in_theme = card_map["theme_id"] == body.theme
            if body.cards is not None:
                rows = [live_card(line, kind, c) for c in body.cards]
                if None in rows:
                    continue
                outside = [c for c, i in zip(body.cards, rows) if not in_theme.iloc[i]]
                if outside:
                    error(line, kind, f"cards {outside} are not in theme {body.theme!r}")
                    continue
                chosen = card_map["card_id"].isin(body.cards)
                how = f"{len(body.cards)} cards"
            else:
                word = body.keyword.lower()
                chosen = in_theme & card_map["card_id"].map(lambda c: word in texts.get(c, "").lower())
                how = f"cards saying {body.keyword!r}"
                if not chosen.any():
                    error(line, kind, f"keyword {body.keyword!r} matches no card of theme {body.theme!r}")
                    continue
            card_map.loc[chosen, "theme_id"] = body.new_id
            parent = topics[topics["theme_id"] == body.theme].iloc[0]
            topics = pd.concat([topics, pd.DataFrame([{"cluster": int(parent["cluster"]), "theme_id": body.new_id,
                                                       "label": body.label, "keywords": [],
                                                       "size": int(chosen.sum())}])], ignore_index=True)
            out.followers |= set(card_map.loc[chosen, "card_id"])
            out.keep.add(body.new_id)
            log(line, kind, body.new_id, f"split from {body.theme} ({how}) as {body.label!r}", chosen.sum())
        elif kind == "move":
            i = live_card(line, kind, body.card)
            if i is None:
                continue
            if body.to in topic_ids():
                card_map.at[i, "theme_id"] = body.to
                out.followers.add(body.card)
                out.keep.add(body.to)
            elif body.to in taxonomy_ids:
                _set(card_map, i, theme_id=None, category_id=category_of[body.to], taxonomy_theme_id=body.to,
                     confidence=1.0)
                out.followers.discard(body.card)
            else:
                error(line, kind, missing_theme(body.to))
                continue
            log(line, kind, body.card, f"moved to {body.to}", 1)
        elif kind in ("pin", "emergent"):
            if body.theme not in topic_ids():
                error(line, kind, missing_theme(body.theme))
                continue
            target = body.taxonomy_theme if kind == "pin" else None
            if kind == "pin" and target not in taxonomy_ids:
                error(line, kind, f"taxonomy_theme {target!r} is not in taxonomy {taxonomy.id!r}")
                continue
            out.pinned[body.theme] = target
            out.keep.add(body.theme)
            size = (card_map["theme_id"] == body.theme).sum()
            log(line, kind, body.theme, f"pinned to {target}" if target else "marked emergent", size)
        elif kind == "exclude":
            i = live_card(line, kind, body.card)
            if i is None:
                continue
            _set(card_map, i, status=STATUS_REJECTED, theme_id=None, category_id=None, taxonomy_theme_id=None,
                 confidence=None, centrality=None, subtheme_id=None)
            out.followers.discard(body.card)
            log(line, kind, body.card, f"{EXCLUDED_REASON}: {body.reason}", 1)
    if problems:
        raise CurationError(f"{len(problems)} rule(s) no longer match this run: " + "; ".join(problems)
                            if len(problems) > 1 else problems[0])
    sizes = card_map["theme_id"].value_counts()
    topics["size"] = [int(sizes.get(t, 0)) for t in topics["theme_id"]]
    return topics[topics["size"] > 0].reset_index(drop=True), card_map, out


def settle(outcome: Outcome, homes: pd.DataFrame, card_map: pd.DataFrame, taxonomy: Taxonomy
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(homes, card map) with pinned topics' homes forced and every follower placed where its topic sits."""
    category_of = {t.id: t.category_id for t in taxonomy.themes}
    homes, card_map = homes.copy(), card_map.copy()
    for topic, target in outcome.pinned.items():
        at = homes["theme_id"] == topic
        for i in homes.index[at]:
            _set(homes, i, category_id=category_of[target] if target else EMERGENT, taxonomy_theme_id=target,
                 emergent=target is None)
    home = {row.theme_id: row for row in homes.itertuples(index=False)}
    follows = card_map["card_id"].isin(outcome.followers) | card_map["theme_id"].isin(list(outcome.pinned))
    for i in card_map.index[follows & (card_map["status"] != STATUS_REJECTED)]:
        topic = home.get(card_map.at[i, "theme_id"])
        if topic is not None:
            _set(card_map, i, category_id=topic.category_id,
                 taxonomy_theme_id=None if topic.emergent else topic.taxonomy_theme_id)
    return homes, card_map


def relabel(curation: Curation, outcome: Outcome, themes: pd.DataFrame) -> pd.DataFrame:
    """Themes with the renames of taxonomy themes and emergent groups; a rename matching no theme is an error."""
    themes = themes.copy()
    problems = []
    for theme, (line, label) in outcome.late_renames.items():
        at = themes["theme_id"] == theme
        if not at.any():
            problems.append(f"{curation.path}, line {line}: rename: theme {theme!r} is not a theme of this run "
                            f"(unknown id)")
            continue
        themes.loc[at, "label"] = label
        outcome.log.append({"line": line, "rule": "rename", "target": theme, "detail": f"renamed to {label!r}",
                            "cards": int(themes.loc[at, "size"].iloc[0])})
    if problems:
        raise CurationError("; ".join(problems))
    outcome.log.sort(key=lambda e: e["line"])
    return themes
