"""The official category taxonomy (`configs/taxonomy.yaml`): categories, themes, statements."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from pipeline.errors import InnsiktError
from pipeline.ids import EMERGENT, EMERGENT_NAME
from pipeline.yaml_io import read_yaml, yaml_line


class TaxonomyError(InnsiktError):
    """A taxonomy file that does not have the expected shape; names the file and the entry."""


@dataclass(frozen=True)
class TaxonomyTheme:
    id: str
    name: str
    category_id: str
    statements: tuple[str, ...] = ()
    description: str = ""

    @property
    def prototype(self) -> str:
        """Text that stands for the theme when comparing it with cards."""
        body = " ".join(self.statements) or self.description
        return f"{self.name}. {body}".strip()

    @property
    def choices(self) -> tuple[str, ...]:
        """What a votes file may give as `choice` for this theme: the statement number, or agree/disagree."""
        if len(self.statements) >= 2:
            return tuple(str(i + 1) for i in range(len(self.statements)))
        return ("agree", "disagree")


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    themes: tuple[TaxonomyTheme, ...]


@dataclass(frozen=True)
class Taxonomy:
    id: str
    categories: tuple[Category, ...]

    @property
    def themes(self) -> tuple[TaxonomyTheme, ...]:
        return tuple(theme for category in self.categories for theme in category.themes)

    def theme(self, theme_id: str) -> TaxonomyTheme:
        return {t.id: t for t in self.themes}[theme_id]

    def category_name(self, category_id: str) -> str:
        names = {c.id: c.name for c in self.categories}
        return names.get(category_id, EMERGENT_NAME)


def parse_taxonomy(raw: dict, source: str = "taxonomy",
                   line_of: Callable[[tuple], int | None] | None = None) -> Taxonomy:
    """Categories and themes of a parsed taxonomy file; `line_of(path)` adds line numbers to errors."""

    def at(path: tuple) -> str:
        line = line_of(path) if line_of else None
        return f"line {line}" if line else ""

    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        raise TaxonomyError(f"{source}: expected a mapping with a 'categories' list")
    seen: dict[str, tuple[str, tuple]] = {}  # id -> (entry, path) where it was first used
    categories = []
    for c_index, cat in enumerate(raw["categories"]):
        entry = f"categories[{c_index}]"
        where = f"{source}: {entry}"
        if not isinstance(cat, dict) or not cat.get("id") or not isinstance(cat.get("themes"), list):
            raise TaxonomyError(_located(f"{where}: needs 'id', 'name' and a 'themes' list", at(("categories", c_index))))
        themes = []
        for t_index, theme in enumerate(cat["themes"]):
            t_where = f"{where}.themes[{t_index}]"
            t_path = ("categories", c_index, "themes", t_index)
            if not isinstance(theme, dict) or not theme.get("id") or not theme.get("name"):
                raise TaxonomyError(_located(f"{t_where}: needs 'id' and 'name'", at(t_path)))
            statements = theme.get("statements") or ()
            if not isinstance(statements, (list, tuple)) or not all(isinstance(x, str) for x in statements):
                raise TaxonomyError(_located(f"{t_where}: 'statements' must be a list of texts, found "
                                             f"{type(statements).__name__}", at(t_path + ("statements",))))
            themes.append(
                TaxonomyTheme(
                    id=str(theme["id"]),
                    name=str(theme["name"]),
                    category_id=str(cat["id"]),
                    statements=tuple(statements),
                    description=str(theme.get("description") or ""),
                )
            )
        entries = [(str(cat["id"]), entry, ("categories", c_index))] + [
            (t.id, f"{entry}.themes[{i}]", ("categories", c_index, "themes", i)) for i, t in enumerate(themes)
        ]
        for ident, label, path in entries:
            if ident == EMERGENT:
                raise TaxonomyError(_located(f"{source}: {label}: id {ident!r} is reserved for themes outside "
                                             f"the taxonomy; choose another id", at(path)))
            if ident in seen:
                first_label, first_path = seen[ident]
                first_line = at(first_path)
                raise TaxonomyError(_located(
                    f"{source}: {label}: id {ident!r} is used twice (first at {first_label}"
                    f"{', ' + first_line if first_line else ''}); ids must be unique across categories and themes",
                    at(path)))
            seen[ident] = (label, path)
        categories.append(Category(id=str(cat["id"]), name=str(cat.get("name") or cat["id"]), themes=tuple(themes)))
    return Taxonomy(id=str(raw.get("taxonomy") or "taxonomy"), categories=tuple(categories))


def _located(message: str, line: str) -> str:
    """`file: entry: text` -> `file: entry: text (line N)`."""
    return f"{message} ({line})" if line else message


def load_taxonomy(path: str | Path) -> Taxonomy:
    path = Path(path)
    raw, text = read_yaml(path, TaxonomyError, "taxonomy")
    return parse_taxonomy(raw, str(path), line_of=lambda loc: yaml_line(text, loc))


# The codebook and analyst labels: read beside the taxonomy by map, tune and evaluate.
class LabelError(InnsiktError):
    """A labels file that does not fit the corpus or the taxonomy; names file, row and column."""


@dataclass(frozen=True)
class Codebook:
    """Per taxonomy theme: cue stems and paraphrases (`configs/codebook.yaml`)."""

    cues: dict[str, tuple[str, ...]]
    phrases: dict[str, tuple[str, ...]]



def load_codebook(path: Path, taxonomy: Taxonomy) -> Codebook:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = raw.get("themes") or {}
    known = {t.id for t in taxonomy.themes}
    unknown = sorted(set(entries) - known)
    if unknown:
        raise TaxonomyError(f"{path}: themes {unknown} are not in taxonomy {taxonomy.id!r}")
    return Codebook(
        cues={k: tuple(str(c).lower() for c in (v or {}).get("cues", ())) for k, v in entries.items()},
        phrases={k: tuple(str(p) for p in (v or {}).get("phrases", ())) for k, v in entries.items()},
    )



def load_labels(path: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """Analyst labels: `card_id, category_id, theme_id` (theme `emergent:<topic>` for emergent)."""
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("card_id", "theme_id"):
        if column not in labels.columns:
            raise LabelError(f"{path}, row 1, column {column!r}: missing; found {list(labels.columns)}")
    known = {t.id for t in taxonomy.themes}
    for row, theme_id in enumerate(labels["theme_id"], start=2):
        if theme_id not in known and not theme_id.startswith(f"{EMERGENT}:"):
            raise LabelError(f"{path}, row {row}, column 'theme_id': {theme_id!r} is neither a taxonomy theme "
                             f"nor 'emergent:<topic>'")
    return labels[["card_id", "theme_id"]]
