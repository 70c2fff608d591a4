"""Test log-likelihood in nats per example and bits per dimension, labelled exact or bound.

For discrete data every model's ``log_prob`` is the log-probability of the discrete values (models that work in
continuous space include the dequantization correction ``-D log levels`` themselves), so bits/dim is
``NLL / (D ln 2)`` on the discrete scale, as papers report it. For continuous data bits/dim is the same formula
applied to the differential NLL.
"""
from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor
from tqdm.auto import tqdm


@torch.no_grad()
def log_likelihoods(model, x: Tensor, batch_size: int = 1000, progress: bool = False,
                    labels: Tensor | None = None, importance_samples: int | None = None) -> Tensor:
    """``model.log_prob`` of every example of ``x`` (given its ``labels`` for a class-conditional model), computed
    in batches, shape ``(N,)``. ``importance_samples = K`` evaluates a bound that tightens with ``K`` (the
    importance-weighted bound, ``log_prob(x, samples=K)``) for the models that have one."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if model.likelihood is None:
        raise ValueError(f"{type(model).__name__} has no likelihood to evaluate (likelihood = None)")
    options = {}
    if importance_samples is not None:
        if "samples" not in inspect.signature(model.log_prob).parameters:
            raise ValueError(f"{model.model_name or type(model).__name__} has no importance-weighted bound "
                             f"(its likelihood is {model.likelihood!r}); importance samples serve bounds such as "
                             "those of dequantized flows")
        options["samples"] = importance_samples
    starts = range(0, len(x), batch_size)
    return torch.cat([model.log_prob(x[start:start + batch_size].to(model.device),
                                     **_labels(labels, start, batch_size, model.device), **options).cpu()
                      for start in tqdm(starts, desc="log-likelihood", disable=not progress)])


def _labels(labels: Tensor | None, start: int, batch_size: int, device) -> dict:
    return {} if labels is None else {"labels": labels[start:start + batch_size].to(device)}


def nll_summary(log_p: Tensor, dim: int, likelihood: str) -> dict:
    """Mean NLL, its standard error and bits/dim from per-example log-likelihoods."""
    nll = -log_p.double()
    mean = nll.mean().item()
    stderr = (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan")
    return {"nll_nats": mean, "nll_stderr": stderr, "bits_per_dim": mean / (dim * math.log(2)),
            "likelihood": likelihood, "n_test": len(nll)}


RELATIONS = {"exact": "=", "lower_bound": "≤"}  # how a reported NLL relates to the true NLL


def nll_label(metrics: dict) -> str:
    """``NLL = 1.02`` for exact likelihoods, ``NLL ≤ 85.3`` for bounds (a lower bound on log p bounds the NLL from
    above)."""
    relation = RELATIONS[metrics["likelihood"]]
    return f"NLL {relation} {metrics['nll_nats']:.4g} nats ({metrics['bits_per_dim']:.4g} bits/dim)"
