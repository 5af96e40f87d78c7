"""Confidence scores, the lost flag and re-detection of every tracker family (tiny networks)."""
import math
import os
import warnings

import numpy as np
import pytest
import torch
from test_crest_tracker import FAST, _sdnet_backbone, _weights

import tracker
from foundation.errors import UserError
from otb_eval.datasets import OTBDataset
from otb_eval.experiment import run_ope
from otb_eval.results import read_scores, score_path
from otb_eval.testing import make_sequence, patch_sequence
from tracker.crest.online import CRESTTracker
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import untrained_weights
from tracker.weights import UntrainedWeightsWarning

pytestmark = pytest.mark.usefixtures("one_thread")


def _sdnet(name: str = "metasdnet", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return tracker.make(name, weights=untrained_weights(ModelConfig.small()), **kw)


def _crest(**kw):
    return CRESTTracker(weights=_weights(_sdnet_backbone()), **{**FAST, **kw})


def _opencv():
    return tracker.make("mil")


FAMILIES = {"metasdnet": _sdnet, "mdnet": lambda **kw: _sdnet("mdnet", **kw), "crest": _crest,
            "mil": _opencv, "identity": lambda: tracker.make("identity")}


def _run(trk, frames, gt, each=None):
    boxes = [gt[0]]
    trk.init(frames[0], gt[0])
    for t, f in enumerate(frames[1:], 1):
        boxes.append(trk.update(f))
        if each is not None:
            each(t)
    return np.array(boxes)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_reports_a_finite_score(family):
    frames, gt = patch_sequence(n=6)
    trk = FAMILIES[family]()
    assert trk.score is None
    trk.init(frames[0], gt[0])
    scores = [trk.score]
    for f in frames[1:]:
        trk.update(f)
        scores.append(trk.score)
        assert isinstance(trk.lost, bool)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores), scores
    if family in ("mil", "identity"):
        assert set(scores) <= {0.0, 1.0}


def test_crest_scores_are_its_peak_or_psr():
    frames, gt = patch_sequence(n=4)
    peak, psr = _crest(), _crest(confidence="psr")
    _run(peak, frames, gt)
    _run(psr, frames, gt)
    assert peak.score == peak.peak == peak.last_peak and psr.score == psr.psr
    assert psr.psr > 1.0     # a tracked patch stands out of its sidelobe


@pytest.mark.parametrize("make,label", [(_sdnet, "MetaSDNet"), (_crest, "MetaCREST")])
def test_lost_options_are_type_checked(make, label):
    with pytest.raises(UserError, match=f"{label} option lost_threshold must be a finite number"):
        make(lost_threshold="low")
    with pytest.raises(UserError, match=f"{label} option redetect must be true or false"):
        make(redetect=1)
    trk = make(lost_threshold=2)
    assert trk.lost_threshold == 2


class _NoScore:
    """A got10k-style tracker without a score attribute (another toolkit's tracker)."""

    name = "noscore"

    def init(self, image, box):
        self.box = np.asarray(box, float)

    def update(self, image):
        return self.box


def test_run_protocol_writes_scores_only_for_trackers_that_report_them(tmp_path):
    root, results = str(tmp_path / "data"), str(tmp_path / "results")
    make_sequence(root, "Seq", 5, seed=0)
    data = OTBDataset(root)
    run_ope(tracker.factory("identity"), data, results, progress=False)
    run_ope(_NoScore(), data, results, progress=False)
    assert np.array_equal(read_scores(results, "identity", "Seq"), np.ones(5))
    assert not os.path.exists(score_path(results, "noscore", "Seq"))
    assert read_scores(results, "noscore", "Seq") is None
    with open(os.path.join(results, "identity", "Seq.txt")) as a, open(os.path.join(results, "noscore", "Seq.txt")) as b:
        assert a.read() == b.read()      # the box files do not depend on scores


def test_metatrack_eval_writes_score_files(tmp_path):
    from tracker.cli import main

    root, results = tmp_path / "data", tmp_path / "results"
    make_sequence(str(root), "Seq", 4, seed=1)
    assert main(["eval", "--dataset", str(root), "--trackers", "identity", "--results", str(results),
                 "--no-progress"]) == 0
    assert (results / "identity" / "scores" / "Seq_score.txt").read_text() == "1.000000\n" * 4


@pytest.mark.parametrize("family", ["metasdnet", "crest"])
def test_threshold_without_redetect_changes_no_box(family):
    frames, gt = patch_sequence(n=12)
    default = _run(FAMILIES[family](), frames, gt)
    off = FAMILIES[family](redetect=False, lost_threshold=1e6)   # every frame flagged, nothing done
    assert np.array_equal(_run(off, frames, gt), default)
    assert off.lost


def _vanishing(n: int = 24, gone: range = range(10, 15)):
    """patch_sequence with the patch painted over by the background on the ``gone`` frames."""
    frames, gt = patch_sequence(n=n, seed=2)
    bg, _ = patch_sequence(n=n, seed=2, box=(0, 0, 1, 1), amplitude=0, drift=0)
    frames = [bg[t] if t in gone else frames[t] for t in range(n)]
    return frames, gt, gone


def _state(trk):
    """What an online update would change: the trainable tensors and the memory sizes."""
    if isinstance(trk, CRESTTracker):
        return {k: v.detach().clone() for k, v in trk.params.items()}, len(trk._memory)
    return ({k: v.detach().clone() for k, v in trk.params.items() if k.startswith("fc.")},
            len(trk.pos_mem.items), len(trk.neg_mem.items))


def _same(a, b) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:] == b[1:]


@pytest.mark.parametrize("family", ["metasdnet", "crest"])
def test_redetect_flags_the_vanished_target_and_learns_nothing_then(family):
    frames, gt, gone = _vanishing()
    probe = FAMILIES[family](redetect=False)
    scores = []
    _run(probe, frames, gt, lambda t: scores.append(probe.score))
    scores = np.array([math.nan] + scores)
    # a threshold just above every score while the target is gone: those frames are all lost
    threshold = float(max(scores[t] for t in gone)) + 1e-6
    assert threshold < np.nanmax(scores)

    trk = FAMILIES[family](redetect=True, lost_threshold=threshold)
    flagged, frozen, searched = [], [], []
    before = [None]

    def check(t):
        flagged.append(t) if trk.lost else None
        if trk.lost:
            frozen.append(_same(before[0], _state(trk)))
            searched.append(trk.searching)
        before[0] = _state(trk)

    trk.init(frames[0], gt[0])
    before[0] = _state(trk)
    for t, f in enumerate(frames[1:], 1):
        trk.update(f)
        check(t)
    assert gone[0] in flagged, (flagged, np.round(scores, 3))
    assert frozen and all(frozen) and all(searched)
