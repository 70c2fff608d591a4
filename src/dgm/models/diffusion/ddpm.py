"""DDPM (Ho, Jain & Abbeel, 2020, "Denoising diffusion probabilistic models") with the improvements of Nichol &
Dhariwal (2021, "Improved denoising diffusion probabilistic models"): the variance-preserving process on ``steps``
discrete steps with a linear or cosine schedule (:class:`~dgm.models.diffusion.schedules.VariancePreserving`), a
network predicting ``ε``, ``x_0`` or ``v``, fixed or learned variances, and DDPM's variational bound with the
discretized decoder for bits/dim; everything else is :class:`~dgm.models.diffusion.base.DiffusionModel`.

The network is an MLP of ``x_t`` and the time for vectors, DDPM's U-Net for images
(:func:`~dgm.models.diffusion.networks.denoising_network`). Sampling takes any sampler at sampling time
(``model.sample(64, sampler="ancestral", steps=1000)``); the default is 50 DDIM steps (at most ``steps``).
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.models.diffusion.base import DiffusionModel
from dgm.models.diffusion.networks import denoising_network
from dgm.models.diffusion.schedules import VariancePreserving
from dgm.registry import register_model


@register_model("ddpm", "DDPM / improved DDPM: linear or cosine schedule, eps/x0/v prediction, learned variances, "
                        "VLB and probability-flow likelihoods, any sampler (DDIM, DPM-Solver++, SDE, ODE)")
class DDPM(DiffusionModel):
    def __init__(self, shape: tuple[int, ...], levels: int | None = None, steps: int = 1000,
                 schedule: str = "linear", prediction: str = "epsilon", loss: str = "simple",
                 variance: str = "posterior", times: str = "discrete", hidden: Sequence[int] = (128, 128, 128),
                 width: int = 32,
                 multipliers: Sequence[int] = (1, 2, 2), blocks_per_level: int = 2,
                 attention_levels: Sequence[int] = (2,), dropout: float = 0.0, groups: int = 8,
                 patch: int = 1, n_classes: int | None = None, label_dropout: float = 0.1, sampler: str = "ddim",
                 sampler_options: dict | None = None, input_octaves: int = 0):
        default_options = {"steps": min(50, steps)}
        super().__init__(shape, levels, VariancePreserving(steps, schedule), prediction, loss, variance, times,
                         n_classes, label_dropout, sampler,
                         default_options if sampler_options is None else sampler_options)
        self.network = denoising_network(self.shape, self.output_factor, self.n_classes, hidden, width,
                                         multipliers, blocks_per_level, attention_levels, dropout, groups, patch,
                                         input_octaves)
