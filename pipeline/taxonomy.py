"""The official category taxonomy (`configs/taxonomy.yaml`): categories, themes, statements."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

EMERGENT = "emergent"
EMERGENT_NAME = "Nye temaer (utenfor taksonomien)"


class TaxonomyError(ValueError):
    """A taxonomy file that does not have the expected shape; names the file and the entry."""


@dataclass(frozen=True)
class Theme:
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


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    themes: tuple[Theme, ...]


@dataclass(frozen=True)
class Taxonomy:
    id: str
    categories: tuple[Category, ...]

    @property
    def themes(self) -> tuple[Theme, ...]:
        return tuple(theme for category in self.categories for theme in category.themes)

    def theme(self, theme_id: str) -> Theme:
        return {t.id: t for t in self.themes}[theme_id]

    def category_name(self, category_id: str) -> str:
        names = {c.id: c.name for c in self.categories}
        return names.get(category_id, EMERGENT_NAME)


def parse_taxonomy(raw: dict, source: str = "taxonomy") -> Taxonomy:
    if not isinstance(raw, dict) or not isinstance(raw.get("categories"), list):
        raise TaxonomyError(f"{source}: expected a mapping with a 'categories' list")
    seen: set[str] = set()
    categories = []
    for c_index, cat in enumerate(raw["categories"]):
        where = f"{source}: categories[{c_index}]"
        if not isinstance(cat, dict) or not cat.get("id") or not isinstance(cat.get("themes"), list):
            raise TaxonomyError(f"{where}: needs 'id', 'name' and a 'themes' list")
        themes = []
        for t_index, theme in enumerate(cat["themes"]):
            t_where = f"{where}.themes[{t_index}]"
            if not isinstance(theme, dict) or not theme.get("id") or not theme.get("name"):
                raise TaxonomyError(f"{t_where}: needs 'id' and 'name'")
            themes.append(
                Theme(
                    id=str(theme["id"]),
                    name=str(theme["name"]),
                    category_id=str(cat["id"]),
                    statements=tuple(str(s) for s in theme.get("statements") or ()),
                    description=str(theme.get("description") or ""),
                )
            )
        for ident, label in [(str(cat["id"]), where)] + [(t.id, f"{where}.themes[{i}]") for i, t in enumerate(themes)]:
            if ident in seen or ident == EMERGENT:
                raise TaxonomyError(f"{label}: id {ident!r} is used twice (or is reserved)")
            seen.add(ident)
        categories.append(Category(id=str(cat["id"]), name=str(cat.get("name") or cat["id"]), themes=tuple(themes)))
    return Taxonomy(id=str(raw.get("taxonomy") or "taxonomy"), categories=tuple(categories))


def load_taxonomy(path: str | Path) -> Taxonomy:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {exc}") from exc
    return parse_taxonomy(raw, str(path))
