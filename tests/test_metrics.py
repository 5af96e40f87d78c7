import numpy as np
import pytest

from foundation import boxes as B
from otb_eval import metrics as M


def test_iou_and_center_error_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(B.iou(a, b), [50 / 150, 0, 1], atol=1e-12)
    # centres x + (w - 1) / 2: (4.5, 4.5) vs (9.5, 4.5) -> 5 px
    np.testing.assert_allclose(B.center_error(a[:1], b[:1]), [5.0])
    np.testing.assert_allclose(B.pairwise_iou(a[:1], b)[0], B.iou(a, b))


def test_success_is_strict_and_precision_inclusive():
    ious = np.array([0.5, 0.5, 1.0, 0.0])
    curve = M.success_curve(ious)
    assert curve[10] == 0.25          # IoU 0.5 is not > 0.5; only the 1.0 frame succeeds
    assert curve[0] == 0.75           # IoU 0 is not > 0
    assert curve[-1] == 0.0           # nothing exceeds 1
    prec = M.precision_curve(np.array([20.0, 20.5, 0.0]))
    assert prec[20] == pytest.approx(2 / 3) and prec[0] == pytest.approx(1 / 3)


def test_first_frame_replaced_and_scores():
    anno = np.array([[10, 10, 20, 20]] * 4, float)
    boxes = np.array([[100, 100, 5, 5], [10, 10, 20, 20], [12, 10, 20, 20], [200, 0, 20, 20]], float)
    s = M.score_sequence(boxes, anno)
    err = M.frame_errors(boxes, anno)
    assert err.iou[0] == pytest.approx(1.0)
    assert s.success_score == pytest.approx(np.mean(M.success_curve(err.iou)))
    assert s.precision_score == pytest.approx(0.75)
    assert s.success_rate == pytest.approx(0.75)
    assert s.norm_precision_score == pytest.approx(0.75)
    unreplaced = M.score_sequence(boxes, anno, replace_first=False)
    assert unreplaced.precision_score == pytest.approx(0.5)


def test_invalid_policies():
    anno = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 10, 10]], float)
    boxes = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10], [0, 0, 10, 10]], float)
    g = M.frame_errors(boxes, anno, "got10k")
    p = M.frame_errors(boxes, anno, "pytracking")
    m = M.frame_errors(boxes, anno, "matlab")
    assert np.isnan(g.iou[1]) and M.success_curve(g.iou)[0] == 0.5      # NaN and zero-gt fail
    assert g.center_error[2] == pytest.approx(np.hypot(5, 5))            # got10k does not check
    assert p.iou[2] < 0 and np.isinf(p.center_error[2])                  # invalid gt fails
    assert m.iou[1] == pytest.approx(1.0)                                # NaN -> previous box
    assert m.iou[2] < 0 and m.center_error[2] < 0                        # precision success
    assert M.precision_curve(m.center_error)[0] == 1.0
    with pytest.raises(ValueError, match="unknown policy"):
        M.frame_errors(boxes, anno, "vot")


def test_benchmark_mean_is_unweighted():
    short = M.score_sequence(np.array([[0, 0, 1, 1]] * 2, float), np.array([[0, 0, 1, 1]] * 2, float))
    anno = np.array([[0, 0, 10, 10]] * 8, float)
    bad = anno.copy()
    bad[1:, 0] += 100
    long = M.score_sequence(bad, anno)
    mean = M.mean_scores([short, long])
    assert mean.success_score == pytest.approx((short.success_score + long.success_score) / 2)


def test_speed_both_ways():
    mean_inv, fps = M.speed_fps(np.array([0.5, 0.25, 0.0, 0.25]))
    assert mean_inv == pytest.approx((2 + 4 + 4) / 3)
    assert fps == pytest.approx(4 / 1.0)
