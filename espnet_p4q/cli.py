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
import warnings
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


def add_log_level(p: argparse.ArgumentParser) -> None:
    """--log_level (default INFO); DEBUG also gives the traceback of an error (:func:`guarded`)."""
    p.add_argument("--log_level", default="INFO")


def add_job_options(p: argparse.ArgumentParser, ngpu_help: str) -> None:
    """The closing options of a CLI that runs its jobs on a device and skips finished outputs:
    --ngpu, --overwrite, --log_level."""
    p.add_argument("--ngpu", type=int, default=0, help=ngpu_help)
    p.add_argument("--overwrite", action="store_true")
    add_log_level(p)


def parse_and_log(parser: argparse.ArgumentParser, argv: Optional[List[str]], tag: str, *,
                  show_level: bool = False, quiet_autocast: bool = False) -> argparse.Namespace:
    """ARGV parsed by PARSER, and logging started at its --log_level with lines
    ``<time> [TAG] [<level>] <message>`` (the level with SHOW_LEVEL).

    Why: every CLI starts the same way and its log lines say which CLI wrote them. QUIET_AUTOCAST
    drops the FutureWarning espnet2 triggers with the deprecated torch.cuda.amp.autocast: only
    noise in the job logs of the CLIs that run espnet2 models.
    """
    args = parser.parse_args(argv)
    level = "%(levelname)s " if show_level else ""
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s [{tag}] {level}%(message)s")
    if quiet_autocast:
        warnings.filterwarnings("ignore", message=".*autocast.*", category=FutureWarning)
    return args


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
