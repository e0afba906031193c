"""Deterministic disjoint draws and nested first-N subsets."""

import pytest

from espnet_p4q.data.kaldi_dir import Utterance, read_data_dir, write_data_dir
from espnet_p4q.data.splits import disjoint_draw, first_n_per_speaker, overlapping_texts, subset_data_dir


def test_disjoint_draw_is_deterministic_and_disjoint():
    pool = [f"s{i}" for i in range(100)]
    a = disjoint_draw(pool, {"x": 10, "y": 20}, seed=3)
    b = disjoint_draw(list(reversed(pool)), {"x": 10, "y": 20}, seed=3)
    assert a == b
    assert len(a["x"]) == 10 and len(a["y"]) == 20 and not set(a["x"]) & set(a["y"])
    assert disjoint_draw(pool, {"x": 10}, seed=4)["x"] != a["x"]
    with pytest.raises(ValueError):
        disjoint_draw(pool, {"x": 101}, seed=1)


def _utts(n_per_spk):
    return [Utterance(f"{s}-{i:06d}", s, f"{s}{i}.wav", f"T {s} {i}")
            for s in ("a", "b") for i in range(n_per_spk)]


def test_first_n_per_speaker_and_subset(tmp_path):
    src = write_data_dir(tmp_path / "src", _utts(5))
    sub2 = read_data_dir(subset_data_dir(src, tmp_path / "n2", 2))
    sub3 = read_data_dir(subset_data_dir(src, tmp_path / "n3", 3))
    assert [u.utt_id for u in sub2] == ["a-000000", "a-000001", "b-000000", "b-000001"]
    assert set(sub2) <= set(sub3)
    with pytest.raises(ValueError):
        first_n_per_speaker(_utts(2), 3)
    assert overlapping_texts([tmp_path / "n2"], [tmp_path / "n3"]) == {u.text for u in sub2}
