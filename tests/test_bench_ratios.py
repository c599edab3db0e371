"""benchmarks/bench_train.py's ratios: medians over rounds, and ratios paired within a round."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
bench_train = pytest.importorskip("bench_train")


def test_paired_ratios_follow_a_host_that_changes_speed_between_rounds():
    # The host runs every row twice as slow in round 2: a ratio of medians over all rounds mixes
    # the two speeds; the ratio within each round does not.
    rounds = [[{"name": "gemm-floor", "epochs_s": [1.0, 1.0]},
               {"name": "numpy-by-hand", "epochs_s": [1.2]}, {"name": "ours", "epochs_s": [1.1]}],
              [{"name": "gemm-floor", "epochs_s": [2.0]},
               {"name": "numpy-by-hand", "epochs_s": [2.4]}, {"name": "ours", "epochs_s": [2.2]}]]
    rows = bench_train.merge_rounds(rounds)
    bench_train.add_ratios(rows)
    bench_train.add_paired_ratios(rows, rounds)
    ours = next(r for r in rows if r["name"] == "ours")
    assert ours["paired_vs_floor"] == pytest.approx(1.1)
    assert ours["paired_vs_floor_range"] == [1.1, 1.1]
    assert ours["paired_vs_numpy"] == pytest.approx(1.1 / 1.2, abs=1e-3)
    assert ours["gemm_fraction"] != pytest.approx(1 / 1.1, abs=0.02)  # the mixed median is off
    assert "÷ floor within rounds 1.100" in bench_train.table(rows)
    single = bench_train.merge_rounds(rounds[:1])
    bench_train.add_paired_ratios(single, rounds[:1])
    assert all("paired_vs_floor" not in r for r in single)  # one round: nothing to pair
