"""Load the plugin's YAML configs (LoRA, quantisation, training) into dataclasses, checked.

Why: YAML is forgiving in ways that silently change meaning: ``double_quant: "false"`` is a
non-empty string (true), ``targets: encoder`` is iterated letter by letter, an unknown key is a
typo that leaves the default in force. Every config is checked by the types of its dataclass
fields before use, and every error names the file (and the line, for YAML syntax errors).
Range checks stay in each dataclass's ``__post_init__`` (raising ValueError), next to the fields.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Type, TypeVar, Union

import yaml

from espnet_p4q.fileio import InputError

T = TypeVar("T")


def read_yaml_mapping(path: Union[str, Path]) -> Dict[str, Any]:
    """The top-level mapping of a YAML file ({} for an empty file); errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        with open(path, encoding="utf-8") as f:
            # libyaml's safe loader where PyYAML has it: a Whisper config's 51,865-entry token list
            # takes 0.2 s instead of 2.5 s
            raw = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except UnicodeDecodeError:
        raise InputError("config is not valid UTF-8", path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"YAML syntax error: {problem}", path, mark.line + 1 if mark else None) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"expected a mapping of options, got {type(raw).__name__}", path)
    return raw


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " (or null)"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def coerce(name: str, value: Any, hint) -> Any:
    """``value`` checked against the type ``hint`` (bool must be a bool, lists must be lists...).

    Numbers written as YAML 1.1 reads ``1e-3`` (a string) are accepted for float fields.
    Raises ValueError naming the option.
    """
    origin = typing.get_origin(hint)
    if origin is Union:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(name, value, a)
            except ValueError:
                pass
    elif origin in (list, typing.List):
        (item,) = typing.get_args(hint) or (Any,)
        if isinstance(value, list):
            return [coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any:
        return value
    elif isinstance(hint, type) and isinstance(value, hint):  # e.g. a nested dataclass, built already
        return value
    raise ValueError(f"'{name}' must be {_type_name(hint)}, got {value!r}")


def build_checked(cls: Type[T], raw: Mapping[str, Any], source: Optional[Union[str, Path]] = None,
                  what: str = "option") -> T:
    """``cls(**raw)`` after checking keys and types; any error is an InputError naming ``source``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise InputError(f"unknown {what}(s) {', '.join(map(str, unknown))}; allowed: {', '.join(fields)}",
                         source)
    hints = typing.get_type_hints(cls)
    try:
        values = {k: coerce(k, v, hints[k]) for k, v in raw.items()}
        return cls(**values)
    except TypeError as e:  # a required field is missing
        raise InputError(re.sub(r"^\S*__init__\(\) ", "", str(e)), source) from None
    except ValueError as e:
        raise InputError(str(e), source) from None


def load_checked(cls: Type[T], path: Union[str, Path], what: str = "option", **overrides) -> T:
    """Read ``path`` (YAML mapping), apply non-None ``overrides``, and build ``cls`` checked."""
    raw = read_yaml_mapping(path)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return build_checked(cls, raw, path, what)
