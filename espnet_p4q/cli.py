"""One rule for how every ``python -m espnet_p4q.bin.<verb>`` fails.

Why: a user who gives a bad file should read one line that says what is wrong and where
(``<prog>: error: <what> (<file>[:<line>])``) and get a non-zero exit, not a 60-line traceback;
a developer who needs the traceback asks for it with ``--log_level DEBUG``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from typing import Callable, List, Optional, Sequence

from espnet_p4q.fileio import InputError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``<prog>: error: ...``, exit 2) like every other
    error of the project's CLIs; --help still prints the whole usage, the description (the CLI's
    docstring) as written."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def wants_debug(argv: Sequence[str]) -> bool:
    """True when the command line asks for ``--log_level DEBUG`` (either spelling)."""
    argv = list(argv)
    for i, a in enumerate(argv):
        if a == "--log_level" and i + 1 < len(argv) and argv[i + 1].upper() == "DEBUG":
            return True
        if a.startswith("--log_level=") and a.split("=", 1)[1].upper() == "DEBUG":
            return True
    return False


def one_line(exc: BaseException) -> str:
    """The error as one line: an :class:`InputError` as it reads, anything else with its type."""
    text = str(exc).strip()
    if not isinstance(exc, (InputError,)) and not getattr(exc, "user_facing", False):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


def guarded(prog: str) -> Callable:
    """Decorate ``main(argv=None) -> int`` so that any exception ends in one line and exit 1."""

    def decorate(main: Callable[[Optional[List[str]]], int]) -> Callable:
        @functools.wraps(main)
        def wrapper(argv: Optional[List[str]] = None) -> int:
            debug = wants_debug(sys.argv[1:] if argv is None else argv)
            try:
                return main(argv) if argv is not None else main()
            except SystemExit:
                raise
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception as exc:  # noqa: BLE001 - the one place every CLI error is printed
                if debug:
                    raise
                logging.getLogger(prog).debug("traceback", exc_info=True)
                print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
                return EXIT_ERROR

        return wrapper

    return decorate
