"""One loader for every typed configuration (`tld build`, `tld precompute`, `tld train`).

A configuration is a tree of dataclasses built from nested mappings (a YAML file) with dotted
``--set key=value`` overrides on top. Every layer goes through the same rules:

- an unknown key is refused with the valid keys listed; a section (``filter``) takes a mapping;
- ``bool`` takes true or false only; ``int`` takes an integer or an integral float (``360.0``,
  not ``360.5``); ``float`` takes any number; a number written as text counts as that number
  (YAML reads ``1e-3``, without a dot, as text); ``str`` takes text, an integer or a YAML
  date (kept as their text);
  ``X | None`` also takes null; ``list[X]`` and ``tuple[...]`` take a list of fitting items;
- NaN and infinite numbers are refused, and so is an empty value (null, ``''``, ``[]``) for a
  key whose default is not empty: leave such a key out to get its default.

YAML is read safely, without aliases (``&a``/``*a``: a handful of nested ones expands to
gigabytes once walked), from files of at most 64 KiB.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from timelapse_d.errors import ConfigError

MAX_YAML_BYTES = 64 * 1024


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            where = f"{mark.name}, line {mark.line + 1}"
            raise ConfigError(f"YAML aliases (*name) are not accepted ({where})")
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """YAML text as Python data (safe types, no aliases)."""
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML file (None when empty); ConfigError naming `what` when it is missing,
    too large or not valid YAML."""
    try:
        if Path(path).stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_YAML_BYTES // 1024} KiB")
        return parse_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{what} {path} is not valid YAML: {reason}") from exc


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse repeated `key=value` strings; values are read as YAML scalars."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            parsed[key.strip()] = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: not a YAML value ({exc.problem})") from None
    return parsed


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys: ``{"filter": {"min_height": 240}}`` ->
    ``{"filter.min_height": 240}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def with_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested `data` with each dotted key of `overrides` set (``{"train.lr": 1e-3}``)."""
    merged = _copy(data)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = merged
        for depth, name in enumerate(parents):
            child = target.setdefault(name, {})
            if not isinstance(child, dict):
                section = ".".join(parents[: depth + 1])
                raise ConfigError(f"{section} is not a section; cannot set {key}")
            target = child
        target[leaf] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def from_mapping(cls: type[Any], data: Any, what: str = "config", prefix: str = "") -> Any:
    """An instance of dataclass `cls` from nested mappings; missing keys keep their defaults.

    ConfigError names the dotted key at fault (`what` names the configuration in messages).
    """
    if not isinstance(data, Mapping):
        section = prefix.rstrip(".")
        if section:
            raise ConfigError(f"{section} is a section; set one of its keys, e.g. {section}.<name>")
        raise ConfigError(f"{what} must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        valid = ", ".join(valid_keys(cls, prefix))
        raise ConfigError(f"unknown {what} key {prefix + str(unknown[0])!r}; valid keys: {valid}")
    values = {}
    for name, value in data.items():
        kind, key = hints[name], prefix + name
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[name] = from_mapping(kind, value, what, key + ".")
        else:
            values[name] = coerce(key, value, kind, _default(fields[name]))
    return cls(**values)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def valid_keys(cls: type[Any], prefix: str = "") -> list[str]:
    """Every dotted key of dataclass `cls`, for error messages and docs."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            keys += valid_keys(kind, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def to_dict(config: Any) -> dict[str, Any]:
    """A configuration as nested plain data (tuples as lists), for YAML, JSON and checkpoints."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple) and not value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def coerce(key: str, value: Any, kind: Any, default: Any = None) -> Any:
    """`value` as type `kind` under the rules of this module; ConfigError naming `key` when it
    does not fit (`default`: the key's default, for the rule on empty values)."""
    if _is_empty(value) and not _is_empty(default):
        raise ConfigError(f"{key} needs a value (got {value!r}); leave it out for the default")
    if _is_number(value) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
    options = typing.get_args(kind) if union else ()
    if options:
        if value is None and type(None) in options:
            return None
        (kind,) = [option for option in options if option is not type(None)]
    converted = _convert(key, value, kind)
    if converted is _MISFIT and typing.get_origin(kind) is typing.Literal:
        allowed = ", ".join(str(choice) for choice in typing.get_args(kind))
        raise ConfigError(f"{key} must be one of {allowed}, got {value!r}")
    if converted is _MISFIT:
        name = getattr(kind, "__name__", str(kind))
        article = "an" if name[0] in "aeiou" else "a"
        raise ConfigError(f"{key} expects {article} {name}, got {value!r}")
    return converted


_MISFIT = object()


def _convert(key: str, value: Any, kind: Any) -> Any:
    if kind is Any:
        return value
    if kind is bool:
        return value if isinstance(value, bool) else _MISFIT
    if kind in (int, float):
        number = _number(key, value)
        if number is _MISFIT or kind is float:
            return number if number is _MISFIT else float(number)
        return int(number) if float(number).is_integer() else _MISFIT
    if kind is str:
        if isinstance(value, str):
            return value
        text = isinstance(value, int | datetime.date) and not isinstance(value, bool)
        return str(value) if text else _MISFIT
    origin, items = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        return value if value in items else _MISFIT
    if origin in (list, tuple) and isinstance(value, list | tuple):
        if origin is list:
            items = items * len(value)
        elif len(items) == 2 and items[1] is Ellipsis:  # tuple[int, ...]: any length
            items = (items[0],) * len(value)
        if len(items) != len(value):
            return _MISFIT
        converted = [coerce(key, v, t) for v, t in zip(value, items, strict=True)]
        return converted if origin is list else tuple(converted)
    return _MISFIT


def _number(key: str, value: Any) -> Any:
    """A number, or the text of one, as int or float (_MISFIT for anything else)."""
    if _is_number(value):
        return value
    if not isinstance(value, str):
        return _MISFIT
    for parse in (int, float):
        try:
            number = parse(value)
        except ValueError:
            continue
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return number
    return _MISFIT
