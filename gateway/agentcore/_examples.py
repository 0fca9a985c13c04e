"""Minimal valid values for botocore shapes: an operation's input (what a client could pass to boto3)
and output (what a handler could return), built from the model alone.

Strings that carry a pattern are generated from the pattern itself: it is parsed with Python's own
regular-expression parser (``re._parser``, after the translation `_shapes` makes) and walked to the
shortest string it accepts, repeats grown until the shape's minimum length is met. Every value is
checked against the model's constraints before it is returned, so an example is valid or an error.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel

from ._shapes import Shape, Violation, check, compile_pattern, translate_pattern

_parser: Any = importlib.import_module("re._parser")  # no public API parses a pattern into its tree

EXAMPLE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
_CANDIDATES = "ab01AB-_.:/ "
_SPACE = " \t\n\r\f\v"
_CATEGORIES: dict[str, Callable[[str], bool]] = {
    "CATEGORY_DIGIT": str.isdigit,
    "CATEGORY_SPACE": lambda c: c in _SPACE,
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
}
_MAX_DEPTH = 40


class _Walk:
    """One walk of a parsed pattern: `need` more characters are wanted; alternatives take the
    `choice`-th branch (modulo their number)."""

    def __init__(self, need: int, choice: int) -> None:
        self.need = need
        self.choice = choice

    def seq(self, items: Any) -> str:
        return "".join(self.node(op, arg) for op, arg in items)

    def node(self, op: Any, arg: Any) -> str:
        name = op.name
        if name == "LITERAL":
            return chr(arg)
        if name == "NOT_LITERAL":
            return "a" if arg != ord("a") else "b"
        if name == "ANY":
            return "a"
        if name in ("IN", "CATEGORY"):
            return _pick(arg if name == "IN" else [(op, arg)])
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return self.repeat(*arg)
        if name == "SUBPATTERN":
            return self.seq(arg[3])
        if name == "ATOMIC_GROUP":
            return self.seq(arg)
        if name == "BRANCH":
            branches = arg[1]
            return self.seq(branches[self.choice % len(branches)])
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            return ""
        raise ValueError(f"cannot generate {name}")

    def repeat(self, low: int, high: int, body: Any) -> str:
        if low == high:
            return self.seq(body) * low
        need, self.need = self.need, 0
        if low == 0 and need <= 0:
            return ""
        one = self.seq(body)
        count = low
        if need > 0 and one:
            extra = min(high - low, -(-need // len(one)))
            count += extra
            need -= extra * len(one)
        self.need = max(need, 0)
        return one * count


def _in_class(items: Any, ch: str) -> bool:
    negate = hit = False
    for op, arg in items:
        name = op.name
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit = hit or ord(ch) == arg
        elif name == "RANGE":
            hit = hit or arg[0] <= ord(ch) <= arg[1]
        elif name == "CATEGORY":
            category = arg.name
            positive = category.replace("_NOT_", "_")
            test = _CATEGORIES.get(positive)
            if test is None:
                raise ValueError(f"cannot generate {category}")
            hit = hit or (test(ch) and ch.isascii()) != (positive != category)
        else:
            raise ValueError(f"cannot generate a class with {name}")
    return hit != negate


def _pick(items: Any) -> str:
    for ch in _CANDIDATES + "".join(chr(c) for c in range(0x21, 0x7F)):
        if _in_class(items, ch):
            return ch
    raise ValueError("no printable ASCII character fits the class")


def example_string(pattern: str, low: int = 0, high: int | None = None) -> str:
    """A short string that fully matches the model pattern, of length in [low, high]."""
    compiled = compile_pattern(pattern)
    if compiled is None:
        raise ValueError(f"pattern cannot be compiled: {pattern}")
    tree = _parser.parse(translate_pattern(pattern), re.ASCII)
    for choice in range(4):
        text = _Walk(0, choice).seq(tree)
        if len(text) < low:
            text = _Walk(low - len(text), choice).seq(tree)
        if compiled.fullmatch(text) and low <= len(text) <= (high if high is not None else len(text)):
            return text
    raise ValueError(f"no example found for pattern {pattern!r} with length in [{low}, {high}]")


def _number(meta: dict[str, Any]) -> int | float:
    if "min" in meta:
        return meta["min"]  # type: ignore[no-any-return]
    return min(1, meta["max"]) if "max" in meta else 1


def _string(shape: Shape) -> str:
    meta = shape.metadata
    if meta.get("enum"):
        return str(meta["enum"][0])
    low = max(int(meta.get("min", 0)), 1)
    high = meta.get("max")
    if "pattern" in meta:
        return example_string(meta["pattern"], low, high)
    return "a" * (min(low, high) if high is not None else low)


class _Builder:
    def __init__(self, complete: bool) -> None:
        self.complete = complete

    def value(self, shape: Shape, stack: tuple[str, ...]) -> Any:
        if len(stack) > _MAX_DEPTH:
            raise ValueError(f"required members recurse without end at {shape.name}")
        kind = shape.type_name
        meta = shape.metadata
        inner = (*stack, shape.name)
        if kind == "structure":
            if shape.is_document_type:
                return {"example": "value"} if self.complete else {}
            return self.structure(shape, inner)
        if kind == "list":
            count = max(int(meta.get("min", 0)), 1 if self.complete and shape.member.name not in stack else 0)
            return [self.value(shape.member, inner) for _ in range(count)]
        if kind == "map":
            count = max(int(meta.get("min", 0)), 1 if self.complete and shape.value.name not in stack else 0)
            return {self.key(shape.key, i): self.value(shape.value, inner) for i in range(count)}
        if kind == "string":
            return _string(shape)
        if kind in ("integer", "long", "short", "byte"):
            return int(_number(meta))
        if kind in ("float", "double"):
            return float(_number(meta))
        if kind == "boolean":
            return True
        if kind == "timestamp":
            return EXAMPLE_TIME
        if kind == "blob":
            return b"a" * max(int(meta.get("min", 0)), 1)
        raise ValueError(f"cannot build a {kind}")

    def key(self, shape: Shape, index: int) -> str:
        base = _string(shape)
        return base if index == 0 else base[:-1] + chr(ord("a") + index % 26)

    def structure(self, shape: Shape, stack: tuple[str, ...]) -> dict[str, Any]:
        members = shape.members
        if shape.is_tagged_union:
            name = next((n for n, m in members.items() if m.name not in stack), next(iter(members)))
            return {name: self.value(members[name], stack)}
        required = shape.metadata.get("required", [])
        out: dict[str, Any] = {}
        for name, member in members.items():
            if member.serialization.get("eventstream"):
                continue
            if name not in required and (not self.complete or member.name in stack):
                continue
            out[name] = self.member(member, stack)
        return out

    def member(self, member: Shape, stack: tuple[str, ...]) -> Any:
        location = member.serialization.get("location")
        if location == "statusCode":
            return 200
        if location == "header" and str(member.serialization.get("name", "")).lower() == "content-type":
            found: list[Violation] = []
            check(member, "application/json", "", found)
            if not found:
                return "application/json"
        value = self.value(member, stack)
        if location in ("querystring", "header") and value == []:
            value = [self.value(member.member, stack)]  # an empty list is not on the wire at all
        return value


def example_value(shape: Shape, *, complete: bool = False) -> Any:
    """A valid value of `shape`: required members only, or every member (one item per list and
    map, recursion cut) when `complete`. Raises ValueError if none can be made."""
    value = _Builder(complete).value(shape, ())
    found: list[Violation] = []
    check(shape, value, "", found)
    if found:
        raise ValueError(f"example for {shape.name} is invalid: {found[0].message}")
    return value


def example_input(operation: OperationModel, *, complete: bool = False) -> dict[str, Any]:
    """Minimal (or, `complete`, full) valid parameters for the operation, as passed to boto3."""
    shape = operation.input_shape
    return {} if shape is None else dict(example_value(shape, complete=complete))


def example_output(operation: OperationModel, *, complete: bool = False) -> dict[str, Any]:
    """Minimal (or full) valid output for the operation, as a handler returns it; an event-stream
    payload is left out (its events are framed by `encode_event`)."""
    shape = operation.output_shape
    return {} if shape is None else dict(example_value(shape, complete=complete))
