"""Deterministic disjoint draws."""

import pytest

from espnet_p4q.data.splits import disjoint_draw


def test_disjoint_draw_is_deterministic_and_disjoint():
    pool = [f"s{i}" for i in range(100)]
    a = disjoint_draw(pool, {"x": 10, "y": 20}, seed=3)
    b = disjoint_draw(list(reversed(pool)), {"x": 10, "y": 20}, seed=3)
    assert a == b
    assert len(a["x"]) == 10 and len(a["y"]) == 20 and not set(a["x"]) & set(a["y"])
    assert disjoint_draw(pool, {"x": 10}, seed=4)["x"] != a["x"]
    with pytest.raises(ValueError):
        disjoint_draw(pool, {"x": 101}, seed=1)
