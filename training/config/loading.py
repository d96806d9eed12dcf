"""YAML + dotted ``key=value`` overrides -> typed, validated config dataclasses.

Every problem (unknown key, wrong type, bad value) is collected and reported at once, naming the
key, what was expected and what was given, before any model or dataset is loaded.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """All problems found in a config, one per line."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        super().__init__(f"{source} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=3e-5", "data.labels=[a,b]"]`` -> nested dict; values parsed as YAML."""
    nested: dict[str, Any] = {}
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"override {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            problems.append(f"override {item!r}: value is not valid YAML ({err.problem})")
            continue
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override {item!r}: {part!r} is set both as a value and a section")
                break
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(problems, "command-line overrides")
    return nested


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r} does not exist"], str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError([f"not valid YAML: {err}"], str(path)) from err
    except UnicodeDecodeError as err:
        raise ConfigError([f"not UTF-8 text (byte {err.start}: {err.reason}); expected a UTF-8 YAML file. "
                           "fix: save it as UTF-8"], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([f"top level must be a mapping of sections, got {type(data).__name__}"], str(path))
    return data


def build_dataclass(cls, data: dict, problems: list[str], prefix: str = ""):
    """Instantiate ``cls`` from ``data``; append every problem to ``problems``.

    A field that fails keeps its default, so the object is still built and the cross-field
    checks that follow can run: one pass reports type, range and cross-field errors together."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    for key in unknown:
        problems.append(
            f"unknown key {prefix + key!r}; valid keys in {prefix.rstrip('.') or 'the top level'}: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        if name in fields:
            value = _over_section_default(fields[name], value)
            before = len(problems)
            ok, converted = _coerce(hints[name], value, prefix + name, problems)
            if ok:
                kwargs[name] = converted
            else:
                _add_example(problems, before, fields[name], prefix + name)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        found, valid = _each_field_problem(cls, kwargs)
        problems.extend(dict.fromkeys(found + str(err).splitlines()))  # one line each, no repeats
    try:  # the fields that passed on their own, so cross-field checks see the user's values
        return cls(**valid)
    except (ValueError, TypeError):
        return None


def _add_example(problems: list[str], before: int, field: dataclasses.Field, key: str) -> None:
    """A type problem of a plain value gets the fix: a valid example, the field's default."""
    default = field.default
    if len(problems) != before + 1 or "e.g." in problems[-1] or isinstance(default, bool) \
            or not isinstance(default, (int, float, str)) or default == "":
        return
    problems[-1] += f"; e.g. {key}={default}"


def _over_section_default(field: dataclasses.Field, value):
    """A section given in YAML overrides the task's own default section key by key (the headline
    task's ``train`` defaults differ from the topic task's), not the section class's defaults."""
    if not (isinstance(value, dict) and field.default_factory is not dataclasses.MISSING):
        return value
    default = field.default_factory()
    if not dataclasses.is_dataclass(default):
        return value
    return deep_merge(dataclasses.asdict(default), value)


def _each_field_problem(cls, kwargs: dict) -> tuple[list[str], dict]:
    """A section's own checks raise at the first problem; build it once per given field (the
    rest at their defaults) to find every field's problem. Returns the problems and the fields
    that passed."""
    found, valid = [], {}
    for name, value in kwargs.items():
        try:
            cls(**{name: value})
        except (ValueError, TypeError) as err:
            found.extend(str(err).splitlines())
        else:
            valid[name] = value
    return found, valid


def check_ranges(section, prefix: str, rules: list[tuple]) -> list[str]:
    """Problems of ``section`` against ``rules``: ``(field, low, high, what)`` with ``low``/``high``
    as ``("[", 0)`` (inclusive), ``("(", 0)`` (exclusive) or None (unbounded).

    Each problem names the key, what was expected, what was given, and a valid example (the
    field's default)."""
    defaults = {f.name: f.default for f in dataclasses.fields(section)}
    problems = []
    for name, low, high, what in rules:
        value = getattr(section, name)
        if value is None:
            continue
        if _in_range(value, low, high):
            continue
        expected = _describe(low, high, isinstance(value, int))
        example = defaults.get(name)
        fix = f"; e.g. {prefix}{name}={example}" if example is not dataclasses.MISSING else ""
        problems.append(f"{prefix}{name}: expected {expected}{f' ({what})' if what else ''}, got {value!r}{fix}")
    return problems


def _in_range(value, low, high) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if low and not (value > low[1] if low[0] == "(" else value >= low[1]):
        return False
    if high and not (value < high[1] if high[0] == ")" else value <= high[1]):
        return False
    return True


def _describe(low, high, integer: bool) -> str:
    kind = "an integer" if integer else "a number"
    if low and high:
        return f"{kind} in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{kind} {'>' if low[0] == '(' else '>='} {low[1]}"
    return f"{kind} {'<' if high[0] == ')' else '<='} {high[1]}"


def raise_problems(problems: list[str]) -> None:
    """For a section's ``__post_init__``: one ValueError listing every problem, one per line."""
    if problems:
        raise ValueError("\n".join(problems))


def _coerce(tp, value, key: str, problems: list[str]):
    # Over 60 lines on purpose: one branch per kind of type annotation (dataclass, Literal,
    # Optional/Union, list, dict, scalar); each branch is short and they share the problem list.
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a section (mapping), got {value!r}")
            return False, None
        obj = build_dataclass(tp, value, problems, key + ".")
        return obj is not None, obj
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        inner = [a for a in args if a is not type(None)]
        sub: list[str] = []
        for a in inner:
            sub.clear()
            ok, converted = _coerce(a, value, key, sub)
            if ok and not sub:
                return True, converted
        problems.extend(sub or [f"{key}: expected {tp}, got {value!r}"])
        return False, None
    if origin is Literal:
        if value is False:  # YAML reads `no`, `off` and `false` as False: the choice that means off
            value = next((off for off in ("no", "none") if off in args), value)
        if value in args:
            return True, value
        hint = " (YAML reads a bare no/off/false as False; quote the value)" if isinstance(value, bool) else ""
        problems.append(f"{key}: expected one of {list(args)}, got {value!r}{hint}")
        return False, None
    if origin in (list, tuple):
        if isinstance(value, str) and args and args[0] is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{key}: expected a list, got {value!r}")
            return False, None
        items = []
        for i, v in enumerate(value):
            ok, c = _coerce(args[0] if args else Any, v, f"{key}[{i}]", problems)
            if not ok:
                return False, None
            items.append(c)
        return True, (tuple(items) if origin is tuple else items)
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{key}: expected a mapping, got {value!r}")
            return False, None
        return True, dict(value)
    if tp is Any:
        return True, value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return True, float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads "3e-5" as a string
            return True, float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return True, value
    if tp is bool and isinstance(value, bool):
        return True, value
    if tp is str and isinstance(value, str):
        return True, value
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return True, str(value)
    problems.append(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r} ({type(value).__name__})")
    return False, None


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def save_yaml(obj, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(obj), allow_unicode=True, sort_keys=False), encoding="utf-8")


def bundled_configs() -> dict[str, Path]:
    """The configs installed with the package (``xinwen.configs``), by name: topic, headline, ..."""
    from importlib import resources

    folder = Path(str(resources.files("xinwen.configs")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``topic`` -> its installed YAML).

    A path that exists wins over a bundled name, so a local ``topic`` file is never shadowed."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_configs()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise ConfigError([f"{str(name_or_path)!r} is neither a config file nor a bundled config; expected a "
                       f"YAML path or one of {sorted(bundled)} (`xinwen configs` lists them)"], "xinwen train")
