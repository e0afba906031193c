"""Reading JSON inputs with errors that name the file and the field.

Why: the report is the last stage of a long run; a typo in a manifest or a half-written
train.json should stop it with a message saying which file to fix, not with a KeyError.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

KINDS = {
    "str": (str,), "int": (int,), "number": (int, float), "list": (list,), "object": (dict,),
    "bool": (bool,),
}
_REQUIRED = object()


class ReportError(ValueError):
    """An input of the report is missing or malformed; the message starts with the file."""

    user_facing = True  # the message says what and where: a CLI prints it as one line


def load_json(path: os.PathLike, what: str) -> Any:
    """Parse the JSON file ``path``; ``what`` says what it is, for the error message."""
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such {what} file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}:{e.colno}: {what} is not valid JSON "
                          f"({e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read the {what} ({e})") from e


def field(obj: Dict[str, Any], key: str, kind: str, where: str, default: Any = _REQUIRED,
          nullable: bool = False) -> Any:
    """``obj[key]`` checked to be of ``kind`` (a key of KINDS); ``where`` prefixes errors."""
    if key not in obj:
        if default is _REQUIRED:
            raise ReportError(f"{where}: missing field '{key}'")
        return default
    value = obj[key]
    if value is None and nullable:
        return None
    # bool is an int to Python, but true is no count of anything
    if not isinstance(value, KINDS[kind]) or (kind != "bool" and isinstance(value, bool)):
        null = " or null" if nullable else ""
        raise ReportError(f"{where}: field '{key}' must be {kind}{null}, got {value!r}")
    return value


def need_object(obj: Any, where: str) -> Dict[str, Any]:
    if not isinstance(obj, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def reject_unknown(obj: Dict[str, Any], known, where: str) -> None:
    """Refuse keys outside ``known`` (so a misspelt one is not silently ignored); keys starting
    with '_' are comments."""
    unknown = sorted(k for k in obj if k not in known and not k.startswith("_"))
    if unknown:
        raise ReportError(f"{where}: unknown field(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
