"""espnet_p4q.cli: every CLI error is one line; the traceback only with --log_level DEBUG."""

from __future__ import annotations

import pytest

from espnet_p4q.cli import ArgumentParser, guarded, one_line, wants_debug
from espnet_p4q.fileio import InputError


@guarded("demo")
def demo(argv=None):
    p = ArgumentParser(prog="demo")
    p.add_argument("--n", type=int)
    p.add_argument("--log_level", default="INFO")
    args = p.parse_args(argv)
    if args.n == 1:
        raise InputError("bad value", "conf/x.yaml", 3)
    if args.n == 2:
        raise ValueError("oops\nsecond line")
    return 0


def test_input_error_is_one_line(capsys):
    assert demo(["--n", "1"]) == 1
    assert capsys.readouterr().err == "demo: error: bad value (conf/x.yaml:3)\n"


def test_other_errors_are_one_line_with_their_type(capsys):
    assert demo(["--n", "2"]) == 1
    assert capsys.readouterr().err == "demo: error: ValueError: oops; second line\n"


def test_debug_raises_for_the_traceback():
    with pytest.raises(InputError):
        demo(["--n", "1", "--log_level", "DEBUG"])
    assert wants_debug(["--log_level=debug"]) and not wants_debug(["--log_level", "INFO"])


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        demo(["--n", "x"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "demo: error: argument --n: invalid int value: 'x' (see --help)\n"


def test_one_line_of_a_multiline_message():
    assert one_line(InputError("a\nb", "f")) == "a; b (f)"
