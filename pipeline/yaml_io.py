"""Strict YAML reading for every config file (params, taxonomy, codebook, curation).

Base module: imports nothing from pipeline/. Duplicate keys are errors (PyYAML silently keeps
the last), and errors carry the file, line and column.
"""
from __future__ import annotations

from pathlib import Path

import yaml


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    first_line: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            seen = key in first_line
        except TypeError:  # unhashable key: construct_mapping reports it
            break
        if seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {first_line[key]})", key_node.start_mark
            )
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, error: type[Exception], what: str):
    """(data, text) of a YAML file; unreadable, invalid or duplicate-key YAML raises `error` in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"{path}: cannot read {what}: {reason}") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader), text
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise error(f"{where}: cannot read {what}: invalid YAML: {' '.join(problem.split())}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: cannot read {what}: invalid YAML: {' '.join(str(exc).split())}") from exc


def yaml_line(text: str, loc: tuple) -> int | None:
    """1-based line of the entry at `loc` (mapping keys and list indexes) in a YAML text, if found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
