"""The OTB toolkit: datasets with every quirk, got10k-identical metrics, resumable runs, reports.

Usable on its own (it imports nothing from ``tracker``): score anyone's results, or run any
got10k-style tracker object or factory::

    from otb_eval import OTBDataset, run_ope, evaluate, write_report
    ds = OTBDataset("/data/OTB100", version="otb2015")
    run_ope(my_tracker, ds, "results")              # anything with init(image, box) / update(image)
    write_report(evaluate(ds, "results"), "report")  # also for results written by other toolkits

With this project's trackers: ``run_ope(tracker.factory("metasdnet"), ds, "results")``.
"""
from .datasets import OTBDataset, Sequence, canonical_name, otb100_attributes
from .experiment import run_ope, run_protocol, track_frames, track_sequence
from .metrics import POLICIES, score_sequence
from .report import evaluate, write_report

__all__ = ["OTBDataset", "Sequence", "canonical_name", "otb100_attributes", "run_ope",
           "run_protocol", "track_frames", "track_sequence", "POLICIES", "score_sequence",
           "evaluate", "write_report"]
