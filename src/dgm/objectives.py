"""Objectives other than a model's own loss: the reverse KL divergence to an unnormalised target.

A model fitted to data minimises its own ``loss`` (maximum likelihood, an ELBO, an adversarial game). A model that
gives the density of its own samples (the optional hook ``sample_with_log_prob``: every flow) can instead be fitted
to a target known only up to its normaliser, ``p(x) = exp(−U(x))/Z`` (lecture 6; Rezende & Mohamed, 2015, §6.1):

    KL(q ‖ p) = E_q[log q(x) + U(x)] + log Z,

minimised over samples ``x ∼ q``, with gradients through the samples (reparameterisation); ``log Z`` is a constant.
Reverse KL is mode-seeking: started narrow, ``q`` may settle on one mode of a multimodal target. Annealing tempers
the energy for ``anneal_steps`` training batches, minimising ``E_q[log q + β_t U]`` with
``β_t = min(1, 0.01 + t/anneal_steps)`` (the schedule of Rezende & Mohamed), so that ``q`` first spreads over the whole
target and then sharpens; the logged ``kl`` is always that of the untempered target.

The targets are the energies of :mod:`dgm.data.energies` (``data.distribution`` of the data sets ``energy-u1`` …
``energy-u4``, whose samples serve as test data). The trainer takes this objective with
``fit(model, data, objective="reverse_kl", anneal_steps=...)``; evaluation reports ``KL(q ‖ p)`` of any model that
offers ``sample_with_log_prob`` on such data, however it was trained.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from dgm.core import GenerativeModel, Losses, Update, check_integer
from dgm.data.energies import EnergyTarget

def reverse_kl_terms(model: GenerativeModel, target: EnergyTarget, n: int) -> Tensor:
    """``log q(x) + U(x) + log Z`` for ``n`` samples ``x ∼ q``, with gradients: their mean estimates
    ``KL(q ‖ p)`` for the target ``p = exp(−U)/Z``."""
    samples, log_q = model.sample_with_log_prob(n)
    return log_q + target.energy(samples) + target.log_normalizer


class ReverseKL:
    """Fits ``model`` to ``target`` by reverse KL, annealed over ``anneal_steps`` batches (module docstring).

    It plays the part of the model's own objective for the trainer: ``training_step(x, step)`` yields the one update
    of each batch and ``loss(x)`` the validation values; the batch ``x`` gives only the number of samples drawn.
    """

    def __init__(self, model: GenerativeModel, target: EnergyTarget, anneal_steps: int = 0):
        if not model.offers("sample_with_log_prob"):
            raise ValueError(f"the reverse KL needs a model that gives the density of its own samples (a flow); "
                             f"{model.model_name or type(model).__name__} does not")
        if not isinstance(target, EnergyTarget):
            raise ValueError("objective='reverse_kl' needs an energy as its target: train on one of the data sets "
                             "energy-u1 ... energy-u4")
        self.model, self.target = model, target
        self.anneal_steps = check_integer(anneal_steps, "anneal_steps", 0)

    def inverse_temperature(self, step: int) -> float:
        """``β_t`` of batch ``step``: 1 without annealing."""
        return 1.0 if not self.anneal_steps else min(1.0, 0.01 + step / self.anneal_steps)

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """``E_q[log q + β_t U]`` over as many samples as the batch holds examples."""
        samples, log_q = self.model.sample_with_log_prob(len(x))
        energy = self.target.energy(samples)
        beta = self.inverse_temperature(step)
        kl = (log_q + energy).mean() + self.target.log_normalizer
        yield "model", {"loss": (log_q + beta * energy).mean(), "kl": kl.detach(), "beta": torch.tensor(beta)}

    def loss(self, x: Tensor, **condition) -> Losses:
        """``E_q[log q + U]`` and the KL estimate ``kl`` over as many samples as the batch holds examples."""
        kl = reverse_kl_terms(self.model, self.target, len(x)).mean()
        return {"loss": kl - self.target.log_normalizer, "kl": kl}
