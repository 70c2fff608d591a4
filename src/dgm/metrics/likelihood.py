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
                    labels: Tensor | None = None, importance_samples: int | None = None,
                    options: dict | None = None) -> Tensor:
    """``model.log_prob`` of every example of ``x`` (given its ``labels`` for a class-conditional model), computed
    in batches, shape ``(N,)``. ``importance_samples = K`` evaluates a bound that tightens with ``K`` (the
    importance-weighted bound, ``log_prob(x, samples=K)``) for the models that have one; ``options`` are other
    keyword arguments of the model's ``log_prob`` (a diffusion model's ``method`` or ``timesteps``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if model.likelihood is None:
        raise ValueError(f"{type(model).__name__} has no likelihood to evaluate (likelihood = None)")
    options = dict(options or {})
    parameters = inspect.signature(model.log_prob).parameters
    accepted = set(parameters) - {"x", "labels", "samples"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"{model.model_name or type(model).__name__}'s log_prob takes no option "
                         f"{', '.join(unknown)}; its options are: {', '.join(sorted(accepted)) or 'none'}")
    if importance_samples is not None:
        if "samples" not in parameters:
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
    """Mean NLL, its standard error and bits/dim from per-example log-likelihoods, with the median and the worst
    example beside them, and a ``warning`` where the values are heavy-tailed (:func:`heavy_tail_warning`)."""
    nll = -log_p.double()
    mean = nll.mean().item()
    stderr = (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan")
    worst = int(nll.argmax())
    summary = {"nll_nats": mean, "nll_stderr": stderr, "bits_per_dim": mean / (dim * math.log(2)),
               "likelihood": likelihood, "n_test": len(nll), "nll_median_nats": nll.median().item(),
               "worst_example": worst, "worst_nll_nats": nll[worst].item()}
    warning = heavy_tail_warning(nll)
    summary["heavy_tailed"] = warning is not None
    return summary if warning is None else summary | {"warning": warning}


NORMAL_IQR = 2 * 0.6744897501960817  # the interquartile range of the standard normal distribution, ≈ 1.349
TAIL_LIMIT = 3.0  # how many robust standard errors the tails may add before the mean is flagged


def robust_stderr(values: Tensor) -> float:
    """The standard error of the mean that the bulk of ``values`` implies: ``(IQR / 1.349) / √N``, the standard
    deviation read off the interquartile range as for a normal distribution, which no outlier can inflate."""
    quartiles = torch.quantile(values.double(), torch.tensor([0.25, 0.75], dtype=torch.float64))
    return (quartiles[1] - quartiles[0]).item() / NORMAL_IQR / math.sqrt(len(values))


def heavy_tail_warning(nll: Tensor) -> str | None:
    """Why the mean of the per-example ``nll`` is not a trustworthy summary, or ``None`` when it is.

    Both tests compare with the robust standard error ``r = (IQR / 1.349) / √N`` (:func:`robust_stderr`), which is
    the ordinary standard error for normal values and which the tails cannot inflate:

    - the tails set the error bar: the standard error ``s / √N`` exceeds ``3 r`` (for normal values the ratio is 1,
      for exponential 1.2, Laplace 1.4, Student's t with 3 degrees of freedom 1.5, log-normal with σ = 1 2.0);
    - one example dominates the mean: leaving out the worst example lowers the mean by
      ``(max − mean) / (N − 1) > 3 r``.

    Non-finite values are always reported; when half the values tie (``IQR = 0``) the tests are undefined and
    nothing is reported.
    """
    n = len(nll)
    if not torch.isfinite(nll).all():
        return f"{int((~torch.isfinite(nll)).sum())} of {n} per-example NLLs are not finite"
    bulk = robust_stderr(nll)
    if bulk == 0:  # also a single example
        return None
    stderr = nll.std().item() / math.sqrt(n)
    worst_shift = (nll.max() - nll.mean()).item() / (n - 1)
    reasons = []
    if stderr > TAIL_LIMIT * bulk:
        reasons.append(f"the standard error {stderr:.3g} is {stderr / bulk:.3g} times the bulk's {bulk:.3g}")
    if worst_shift > TAIL_LIMIT * bulk:
        reasons.append(f"the worst example alone raises the mean by {worst_shift:.3g} nats, "
                       f"{worst_shift / bulk:.3g} times the bulk's standard error")
    if not reasons:
        return None
    return (f"heavy-tailed per-example NLL ({'; '.join(reasons)}): the mean is not a trustworthy summary, "
            f"compare the median {nll.median().item():.4g} nats and the worst example "
            f"(#{int(nll.argmax())}, {nll.max().item():.4g} nats)")


RELATIONS = {"exact": "=", "lower_bound": "≤"}  # how a reported NLL relates to the true NLL


def nll_label(metrics: dict) -> str:
    """``NLL = 1.02`` for exact likelihoods, ``NLL ≤ 85.3`` for bounds (a lower bound on log p bounds the NLL from
    above), followed by the median, the worst example and the end of the validation curve (the model's loss, in its
    own unit: an NLL in nats for most, a noise-prediction error for diffusion) where they are known, and
    by the heavy-tail warning on a line of its own where there is one."""
    relation = RELATIONS[metrics["likelihood"]]
    label = f"NLL {relation} {metrics['nll_nats']:.4g} nats ({metrics['bits_per_dim']:.4g} bits/dim)"
    if "nll_median_nats" in metrics:
        label += (f", median {metrics['nll_median_nats']:.4g} nats, worst {metrics['worst_nll_nats']:.4g} nats "
                  f"(test example #{metrics['worst_example']})")
    if metrics.get("validation_loss") is not None:
        label += f"; last validation loss {metrics['validation_loss']:.4g}"  # the model's own loss: nats or not
    return label if "warning" not in metrics else f"{label}\nwarning: {metrics['warning']}"
