"""Evaluation: likelihoods now; sample-quality metrics (FID, IS, KID, precision/recall) build on the same API."""
from dgm.metrics.likelihood import log_likelihoods, nll_label, nll_summary

__all__ = ["log_likelihoods", "nll_summary", "nll_label"]
