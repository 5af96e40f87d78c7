"""OPE metrics: success, precision and normalised-precision curves, vectorised over frames.

Three named policies decide what invalid ground truth (w or h <= 0, or NaN) and invalid
predictions (NaN, w or h <= 0) do to a score:

``got10k`` (default)
    No checks at all, exactly as got10k 0.1.3: IoU against a zero-size box is 0 and a NaN
    prediction fails every threshold, while the centre error of an invalid ground-truth row is
    computed as if it were a box. Numbers equal got10k's to the last digit.
``pytracking``
    A frame with invalid ground truth fails every success and precision threshold; an invalid
    prediction has IoU 0 and an infinite centre error.
``matlab``
    The OTB MATLAB toolkit: an invalid prediction is replaced by the previous frame's box; a
    frame with invalid ground truth fails every success threshold but succeeds for precision.

In all three the first frame's prediction is replaced by the ground truth before scoring
(got10k, the MATLAB toolkit and pytracking do so; pysot does not).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foundation import boxes as B

POLICIES = ("got10k", "pytracking", "matlab")
IOU_THRESHOLDS = np.linspace(0, 1, 21)
CENTER_THRESHOLDS = np.arange(0, 51, dtype=float)
NORM_CENTER_THRESHOLDS = np.arange(0, 51, dtype=float) / 100.0
PRECISION_AT = 20  # pixels (index into CENTER_THRESHOLDS)
NORM_PRECISION_AT = 20  # 0.20 (index into NORM_CENTER_THRESHOLDS)


@dataclass
class FrameErrors:
    """Per-frame IoU, centre error and normalised centre error after the policy was applied."""

    iou: np.ndarray
    center_error: np.ndarray
    norm_center_error: np.ndarray


def frame_errors(boxes: np.ndarray, anno: np.ndarray, policy: str = "got10k",
                 replace_first: bool = True) -> FrameErrors:
    """IoU and centre errors of predictions ``boxes`` against ``anno`` (both N x 4)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    boxes = np.array(boxes, dtype=float, copy=True).reshape(-1, 4)
    anno = np.asarray(anno, dtype=float).reshape(-1, 4)
    if boxes.shape != anno.shape:
        raise ValueError(f"{len(boxes)} predicted boxes for {len(anno)} annotated frames")
    if replace_first and len(boxes):
        boxes[0] = anno[0]
    if policy == "matlab":
        boxes = _carry_forward_invalid(boxes)
    ious = B.iou(boxes, anno)
    errors = B.center_error(boxes, anno)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm_errors = B.normalized_center_error(boxes, anno)
    if policy == "got10k":
        return FrameErrors(ious, errors, norm_errors)
    gt_ok = B.valid(anno)
    if policy == "pytracking":
        pred_ok = B.valid(boxes)
        ious = np.where(pred_ok & gt_ok, ious, -1.0)
        errors = np.where(pred_ok & gt_ok, errors, np.inf)
        norm_errors = np.where(pred_ok & gt_ok, norm_errors, np.inf)
    else:  # matlab: -1 fails every "IoU > t" and passes every "error <= t"
        ious = np.where(gt_ok, ious, -1.0)
        errors = np.where(gt_ok, errors, -1.0)
        norm_errors = np.where(gt_ok, norm_errors, -1.0)
    return FrameErrors(ious, errors, norm_errors)


def _carry_forward_invalid(boxes: np.ndarray) -> np.ndarray:
    """Replace each invalid prediction by the last valid one before it (MATLAB toolkit)."""
    ok = B.valid(boxes)
    if ok.all():
        return boxes
    idx = np.where(ok, np.arange(len(boxes)), 0)
    np.maximum.accumulate(idx, out=idx)
    return boxes[idx]


def success_curve(ious: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU strictly above each of the 21 thresholds 0, 0.05, ..., 1."""
    ious = np.asarray(ious, dtype=float)
    return np.mean(ious[:, None] > IOU_THRESHOLDS[None, :], axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = CENTER_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error at most each threshold (0..50 px by default)."""
    errors = np.asarray(errors, dtype=float)
    return np.mean(errors[:, None] <= thresholds[None, :], axis=0)


@dataclass
class Scores:
    """Curves and scores of one sequence (or the unweighted mean over sequences)."""

    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray

    @property
    def success_score(self) -> float:
        """AUC: the mean of the 21 success-curve points."""
        return float(np.mean(self.success_curve))

    @property
    def precision_score(self) -> float:
        """Precision at 20 px."""
        return float(self.precision_curve[PRECISION_AT])

    @property
    def success_rate(self) -> float:
        """Success at IoU 0.5."""
        return float(self.success_curve[len(IOU_THRESHOLDS) // 2])

    @property
    def norm_precision_score(self) -> float:
        """Normalised precision at 0.2."""
        return float(self.norm_precision_curve[NORM_PRECISION_AT])


def score_sequence(boxes: np.ndarray, anno: np.ndarray, policy: str = "got10k",
                   replace_first: bool = True) -> Scores:
    """Success, precision and normalised-precision curves of one sequence."""
    err = frame_errors(boxes, anno, policy, replace_first)
    return Scores(success_curve(err.iou), precision_curve(err.center_error),
                  precision_curve(err.norm_center_error, NORM_CENTER_THRESHOLDS))


def mean_scores(per_sequence: list[Scores]) -> Scores:
    """The benchmark curve: the UNWEIGHTED mean over sequences, as every OTB toolkit does."""
    if not per_sequence:
        raise ValueError("no sequences to average")
    return Scores(np.mean([s.success_curve for s in per_sequence], axis=0),
                  np.mean([s.precision_curve for s in per_sequence], axis=0),
                  np.mean([s.norm_precision_curve for s in per_sequence], axis=0))


def pooled_scores(errors: list[FrameErrors]) -> Scores:
    """Curves over the frames of several runs pooled together (TRE/SRE aggregate a sequence's
    runs as the sum of successes over the sum of run lengths)."""
    return Scores(success_curve(np.concatenate([e.iou for e in errors])),
                  precision_curve(np.concatenate([e.center_error for e in errors])),
                  precision_curve(np.concatenate([e.norm_center_error for e in errors]),
                                  NORM_CENTER_THRESHOLDS))


def speed_fps(times: np.ndarray) -> tuple[float, float]:
    """``(got10k's mean of 1/t over frames with t > 0, frames / total time)``; -1 when unknown."""
    times = np.asarray(times, dtype=float).ravel()
    positive = times[times > 0]
    mean_inv = float(np.mean(1.0 / positive)) if len(positive) else -1.0
    total = float(np.sum(times))
    return mean_inv, (len(times) / total if total > 0 else -1.0)
