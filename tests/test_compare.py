"""otb_eval.compare: paired bootstrap of a score difference over sequences and seeds."""
import numpy as np
import pytest

from otb_eval.compare import difference, per_sequence


def _scores(seed, seeds=3, sequences=30):
    rng = np.random.default_rng(seed)
    hardness = rng.uniform(0.2, 0.8, sequences)             # shared by every tracker
    return hardness, hardness + rng.normal(0, 0.02, (seeds, sequences))


def test_a_constant_gain_is_found_and_its_sign_decides():
    hardness, a = _scores(0)
    b = a - 0.05
    d = difference(a, b)
    assert d.mean == pytest.approx(0.05) and d.low > 0.03 and d.high < 0.07 and d.verdict == "better"
    assert difference(b, a).verdict == "worse"


def test_pairing_removes_the_sequences_shared_difficulty():
    """A gain far smaller than the spread of sequence difficulty is still found, because both
    trackers see the same drawn sequences."""
    hardness, a = _scores(1, seeds=1)
    b = a - 0.01
    assert np.std(hardness) > 0.1
    assert difference(a, b).verdict == "better"


def test_same_tracker_is_no_difference_and_the_interval_holds_zero():
    _, a = _scores(2)
    d = difference(a, a.copy())
    assert d.low <= 0 <= d.high and d.verdict == "no difference"


def test_seed_noise_widens_the_interval():
    _, a = _scores(3, seeds=3)
    rng = np.random.default_rng(4)
    calm = difference(a + 0.02, a)
    noisy = difference(a + 0.02 + rng.normal(0, 0.05, (3, 1)), a)   # each seed shifts every sequence
    assert noisy.high - noisy.low > 2 * (calm.high - calm.low)


def test_deterministic_shapes_and_errors():
    _, a = _scores(5)
    assert difference(a, a[0], seed=7) == difference(a, a[0], seed=7)
    d = difference(a, a[0])
    assert (d.sequences, d.seeds_a, d.seeds_b) == (30, 3, 1) and d.to_dict()["verdict"] in ("better", "worse", "no difference")
    with pytest.raises(ValueError, match="same"):
        difference(a, a[:, :10])
    with pytest.raises(ValueError, match="finite"):
        difference([np.nan, 1.0], [1.0, 1.0])


def test_per_sequence_reads_performance_json():
    perf = {"t": {"seq_wise": {"A": {"success_score": 0.5}, "B": {"success_score": 0.7}}}}
    assert per_sequence(perf, "t", ["B", "A"]).tolist() == [0.7, 0.5]
    with pytest.raises(KeyError, match="C"):
        per_sequence(perf, "t", ["A", "C"])
