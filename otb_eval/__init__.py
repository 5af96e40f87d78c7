"""The OTB toolkit: datasets with every quirk, got10k-identical metrics, resumable runs, reports.

Typical use::

    from otb_eval import OTBDataset, run_ope, evaluate, write_report
    ds = OTBDataset("/data/OTB100", version="otb2015")
    run_ope("metasdnet", ds, "results")
    write_report(evaluate(ds, "results"), "report")
"""
from .datasets import OTBDataset, Sequence, canonical_name, otb100_attributes
from .experiment import run_ope, track_sequence
from .metrics import POLICIES, score_sequence
from .report import evaluate, write_report

__all__ = ["OTBDataset", "Sequence", "canonical_name", "otb100_attributes", "run_ope",
           "track_sequence", "POLICIES", "score_sequence", "evaluate", "write_report"]
