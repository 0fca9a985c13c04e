"""YAML text to data, with the line of every field worked out only when an error needs it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from gateway.core.errors import ConfigError, ConfigIssue


def _line_map(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[(*path, k)] = key.start_mark.line + 1
            _line_map(value, (*path, k), out)
            out[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


# libyaml's parser when PyYAML was built with it (the same SafeConstructor builds the values).
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Lines(Mapping[tuple[Any, ...], int]):
    """Field path -> line of a YAML text, worked out on first use: only an error reads it, so a
    valid file is parsed once, without keeping its nodes' marks."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._map: dict[tuple[Any, ...], int] | None = None

    def _lines(self) -> dict[tuple[Any, ...], int]:
        if self._map is None:
            self._map = {}
            node = yaml.compose(self._text, Loader=_FAST_LOADER)
            if node is not None:
                _line_map(node, (), self._map)
        return self._map

    def __getitem__(self, path: tuple[Any, ...]) -> int:
        return self._lines()[path]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


def parse_yaml(text: str, source: str) -> tuple[Any, Mapping[tuple[Any, ...], int]]:
    """Parse YAML, returning the data and a map from field path to line (read on first use)."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER), _Lines(text)
    except yaml.YAMLError as fast:
        refused = fast
    try:  # PyYAML's own parser words most problems better ("found character '\t' that ...")
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        refused = exc
    if isinstance(refused, yaml.MarkedYAMLError) and refused.problem_mark is not None:
        line = refused.problem_mark.line + 1
        raise ConfigError([ConfigIssue(f"not valid YAML: {refused.problem}", source=source, line=line)])
    raise ConfigError([ConfigIssue(f"not valid YAML: {refused}", source=source)])
