"""espnet_p4q.config_check: YAML configs checked by the types of their dataclass fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import pytest

from espnet_p4q.config_check import build_checked, load_checked
from espnet_p4q.fileio import InputError


@dataclass
class Conf:
    targets: List[str]
    rank: int = 4
    alpha: float = 8.0
    flag: bool = True
    name: Optional[str] = None
    exclude: List[str] = field(default_factory=list)

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")


def test_good_values_and_yaml_1_1_floats():
    c = build_checked(Conf, {"targets": ["a"], "alpha": "1e-3", "rank": 2, "flag": False, "name": None})
    assert c.alpha == 0.001 and isinstance(c.alpha, float) and c.flag is False and c.rank == 2


@pytest.mark.parametrize("raw, message", [
    ({"targets": "encoder"}, "'targets' must be a list of a string, got 'encoder'"),
    ({"targets": ["a", 3]}, "'targets[1]' must be a string, got 3"),
    ({"targets": ["a"], "flag": "false"}, "'flag' must be true/false, got 'false'"),
    ({"targets": ["a"], "rank": True}, "'rank' must be an integer, got True"),
    ({"targets": ["a"], "rank": 0}, "rank must be >= 1, got 0"),
    ({"targets": ["a"], "alpha": "big"}, "'alpha' must be a number, got 'big'"),
    ({"targets": ["a"], "rnak": 2}, "unknown option(s) rnak; allowed: targets, rank, alpha, flag, name, exclude"),
    ({}, "missing 1 required positional argument: 'targets'"),
])
def test_errors_name_the_option_and_the_file(raw, message):
    with pytest.raises(InputError) as e:
        build_checked(Conf, raw, "conf/x.yaml")
    assert str(e.value) == f"{message} (conf/x.yaml)"


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("targets:\n  - a\nrank: [1\n")
    with pytest.raises(InputError, match=r"YAML syntax error: .* \(.*c.yaml:\d+\)"):
        load_checked(Conf, p)
    p.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="expected a mapping of options, got list"):
        load_checked(Conf, p)
