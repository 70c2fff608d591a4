"""NCSN, the noise-conditional score network (Song & Ermon, 2019, "Generative modeling by estimating gradients of
the data distribution"): one network estimates the score of the data blurred by each of ``noise_levels`` Gaussian
noise levels ``σ_1 > … > σ_L`` in geometric progression (§4.1), trained by denoising score matching weighted by
``λ(σ) = σ²`` (eq. 6), and sampled by annealed Langevin dynamics (Algorithm 1).

It is a :class:`~dgm.models.diffusion.base.DiffusionModel` on the variance-exploding schedule
(:class:`~dgm.models.diffusion.schedules.VarianceExploding`, ``α = 1``) whose network predicts the noise, so the score
is ``s(x, σ) = −ε̂(x, σ)/σ``: the ``1/σ`` scaling of the score that NCSNv2 found to help (Song & Ermon, 2020,
"Improved techniques for training score-based generative models", technique 3), and its ``σ²``-weighted loss is
the mean squared error of ``ε̂`` (see the base class). ``sigma_max`` should be about the largest distance between
two training points (technique 1). The same network also serves the SDE and ODE samplers of the VE SDE, and the
probability-flow likelihood.
"""
from __future__ import annotations

from collections.abc import Sequence

from dgm.models.diffusion.base import DiffusionModel
from dgm.models.diffusion.networks import denoising_network
from dgm.models.diffusion.schedules import VarianceExploding
from dgm.registry import register_model


@register_model("ncsn", "NCSN: noise-conditional score network, geometric noise ladder, sigma^2-weighted denoising "
                        "score matching, annealed Langevin sampling")
class NCSN(DiffusionModel):
    def __init__(self, shape: tuple[int, ...], levels: int | None = None, noise_levels: int = 10,
                 sigma_min: float = 0.01, sigma_max: float = 1.0, times: str = "discrete",
                 hidden: Sequence[int] = (128, 128, 128),
                 width: int = 32, multipliers: Sequence[int] = (1, 2, 2), blocks_per_level: int = 2,
                 attention_levels: Sequence[int] = (2,), dropout: float = 0.0, groups: int = 8,
                 patch: int = 1, n_classes: int | None = None, label_dropout: float = 0.1,
                 sampler: str = "annealed_langevin", sampler_options: dict | None = None,
                 input_octaves: int = 0):
        default_options = {"steps": noise_levels} if sampler == "annealed_langevin" else {}
        super().__init__(shape, levels, VarianceExploding(noise_levels, sigma_min, sigma_max), "epsilon", "simple",
                         "posterior", times, n_classes, label_dropout, sampler,
                         default_options if sampler_options is None else sampler_options)
        self.network = denoising_network(self.shape, self.output_factor, self.n_classes, hidden, width,
                                         multipliers, blocks_per_level, attention_levels, dropout, groups, patch,
                                         input_octaves)
