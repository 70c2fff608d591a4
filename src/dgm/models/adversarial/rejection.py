"""Discriminator rejection sampling (Azadi, Olsson, Darrell, Goodfellow & Odena, 2019, "Discriminator rejection
sampling"): a trained critic turned into an estimate of the density ratio ``r(x) = p_data(x) / p_G(x)``, and the
generator's samples kept with probability ``r(x) / M``, ``M = max r``: the rejection sampler whose accepted samples
follow ``p_data`` where the ratio is right (their eq. 3).

The ratio: an optimal standard-GAN discriminator has ``logit D*(x) = log r(x)`` (Goodfellow et al., 2014, Prop. 1),
but a hinge or Wasserstein critic's output is only an ordering, and DRS itself keeps training its discriminator
after the GAN to calibrate it. Here the critic's output ``D(x)`` is calibrated by histogram binning (Zadrozny &
Elkan, 2001): in ``RATIO_BINS`` bins of ``D`` holding equal shares of generated examples, ``r`` is the share of real
examples in the bin over the share of generated ones, the ratio of the densities of ``D`` under the data and under
the generator, which is ``r(x)`` itself where ``D`` tells the two apart as well as ``x`` does. A bin without real
examples gets ``r = 0``: its samples are never kept (the bridges between a mixture's modes, where a Lipschitz critic
can only slope gently). On the 25 Gaussians it kept more of the high-quality samples than Platt's logistic
calibration ``log r = a D + b`` (docs/adversarial.md). ``M`` is the largest ratio of a bin.
"""
from __future__ import annotations

import torch
from torch import Tensor

RATIO_BINS = 50  # bins of the critic's output, each holding 1/50 of the calibration's generated examples
EXAMPLES_PER_BIN = 10  # the fewest real and generated examples per bin that a calibration accepts
MIN_CALIBRATION_EXAMPLES = EXAMPLES_PER_BIN * RATIO_BINS  # of each kind, for the default bins
MAX_ROUNDS = 1000  # rounds of candidates before sampling gives up (an acceptance rate near zero)


def fit_log_ratio(on_real: Tensor, on_fake: Tensor, bins: int = RATIO_BINS) -> tuple[Tensor, Tensor]:
    """The ``bins − 1`` inner edges of bins of the critic's output with equal shares of ``on_fake`` and the log of
    ``r`` in each bin (``−inf`` where no real example falls), from the critic's outputs ``on_real`` and ``on_fake``
    ``(N,)``, in float64."""
    if min(len(on_real), len(on_fake)) < EXAMPLES_PER_BIN * bins:
        raise ValueError(f"calibrate on at least {EXAMPLES_PER_BIN * bins} real and generated examples ({bins} "
                         f"bins), got {len(on_real)} and {len(on_fake)}")
    on_real, on_fake = on_real.double(), on_fake.double()
    edges = torch.quantile(on_fake, torch.linspace(0, 1, bins + 1, dtype=torch.float64, device=on_fake.device)[1:-1])
    shares = [torch.bincount(torch.bucketize(outputs, edges), minlength=bins).double() / len(outputs)
              for outputs in (on_real, on_fake)]
    return edges, (shares[0] / shares[1]).log()


def log_ratio_of(outputs: Tensor, edges: Tensor, log_ratio: Tensor) -> Tensor:
    """The calibrated ``log r`` of each critic output ``(N,)``: its bin's."""
    return log_ratio[torch.bucketize(outputs.double(), edges)]


def rejection_sample(propose, log_ratio, n: int, log_bound: float) -> Tensor:
    """``n`` of the candidates ``propose(k)`` gives, each kept with probability ``min(1, exp(log_ratio(x) −
    log_bound))``, in the order drawn."""
    kept, count = [], 0
    for _ in range(MAX_ROUNDS):
        candidates = propose(n)
        accept = torch.rand(len(candidates), device=candidates.device).log() < log_ratio(candidates) - log_bound
        kept.append(candidates[accept])
        count += int(accept.sum())
        if count >= n:
            return torch.cat(kept)[:n]
    raise RuntimeError(f"rejection sampling kept {count} of {n} samples in {MAX_ROUNDS} rounds: the calibrated ratio "
                       "rejects nearly every sample")
