"""Type checks for values read from files (recipes, adapter configs): the key, the value and what was expected.

YAML and JSON give strings, numbers and booleans that a dataclass would take as they come: ``"false"`` is truthy,
``NaN`` passes every range check. Everything a user or a file hands to a config goes through ``check_value`` first.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal


def suggest(key: str, known: list[str]) -> str:
    """'; did you mean X?' for a misspelt key, else the list of known keys."""
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def check_value(value: Any, annotation: Any, where: str) -> Any:
    """Accept a file's value for a field of the given annotation, or say which key has which wrong value."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return check_value(value, option, where)
            except ValueError as err:
                errors.append(err)
        raise errors[-1]
    if annotation is type(None):
        if value is None:
            return None
        raise ValueError(f"{where}: expected null, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(annotation):
            return value
        raise ValueError(f"{where}: {value!r} is not one of {list(typing.get_args(annotation))}")
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float:
        number = _as_float(value)
        if number is None:
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    if annotation in (int, str, bool):
        raise ValueError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def _as_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:  # YAML 1.1 reads 5e-5 (no dot) as a string; everybody writes learning rates that way
            return float(value)
        except ValueError:
            return None
    return None


def checked_fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """The init fields of dataclass ``cls`` from ``data``, each type-checked; unknown keys suggest the closest."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    values = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r}{suggest(key, known)}")
        values[key] = check_value(value, hints[key], f"{where}.{key}")
    return values
