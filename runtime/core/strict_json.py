"""JSON into frozen dataclasses, strictly, with every problem found at once.

The model card (``card``) is read through ``build``: unknown keys, missing keys
and wrong types are all collected, so that a user fixing a hand-edited card sees
every mistake in one message, in the CSBDeep manner, instead of one per try. The
dataclasses' own annotations are the schema; nothing here knows about cards.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def build(tp: type[T], value: Any, problems: list[str]) -> T | None:
    """``value`` (parsed JSON) as an instance of dataclass ``tp``; None, with ``problems``
    appended (dotted key paths, e.g. ``tiling.halo must be of type int``), if it does not fit."""
    return _build(tp, value, "", problems)


def _build(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against type ``tp``; append every mismatch to ``problems``."""
    name = where or "card"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{name} must be an object")
            return None
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        for key in sorted(set(value) - set(fields)):
            problems.append(f"unknown key {_join(where, key)}")
        kwargs = {}
        for key, fld in fields.items():
            if key in value:
                kwargs[key] = _build(hints[key], value[key], _join(where, key), problems)
            elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                problems.append(f"missing key {_join(where, key)}")
        if problems:
            return None
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where, problems)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(f"{name} must be a list")
            return None
        return [_build(inner, v, f"{name}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        _, inner = typing.get_args(tp)
        if not isinstance(value, dict):
            problems.append(f"{name} must be an object")
            return None
        return {k: _build(inner, v, _join(where, k), problems) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name} must be a number")
            return None
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            problems.append(f"{name} must be of type {tp.__name__}")
            return None
        return value
    raise TypeError(f"schema uses unsupported type {tp!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
