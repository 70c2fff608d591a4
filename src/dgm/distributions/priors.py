"""Base distributions of latent variables: the base of a normalizing flow, the prior of a VAE.

Each is a distribution over events ``z`` of a fixed ``shape`` and an ``nn.Module``, so that a model holds it as a
part and its learnable parameters (if any) train and are saved with the model:

- :class:`StandardNormal`, ``N(0, I)``: the base of flows (Dinh, Sohl-Dickstein & Bengio, 2017, eq. 3; Rezende &
  Mohamed, 2015) and the prior of the VAE (Kingma & Welling, 2014, §3); no parameters;
- :class:`DiagonalNormal`, ``N(μ, diag σ²)`` with learnable ``μ`` and ``log σ``: a learned Gaussian base, e.g. Glow's
  learned prior (Kingma & Dhariwal, 2018, §3, "learned prior");
- :class:`MixtureOfGaussians`, ``Σ_k π_k N(μ_k, diag σ_k²)`` with learnable weights, means and scales (Bishop, 2006,
  eq. 9.7): a multimodal prior, as in the GMM prior of Dilokthanakul et al. (2016).

The semantics follow ``torch.distributions`` with ``event_shape = shape``: ``log_prob(z)`` takes ``z`` of shape
``(*batch, *shape)`` and returns ``(*batch,)``, the log-density summed over the event dimensions;
``sample(sample_shape)`` returns ``(*sample_shape, *shape)`` (an ``int`` ``n`` gives ``(n, *shape)``);
``rsample`` (reparameterised, differentiable in the parameters) and ``entropy()`` exist where they have a closed
form. Samples are drawn with the global torch generator on the device and in the dtype of the module's parameters,
or, for the parameter-free :class:`StandardNormal`, of a scalar non-persistent buffer that ``.to(...)`` moves
with the model and that no checkpoint stores.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import PlacedModule, check_integer
from dgm.distributions.functional import normal_entropy, normal_log_density

SampleShape = int | Sequence[int]


class BaseDistribution(PlacedModule):
    """A distribution over events of shape ``shape``; see the module docstring for the conventions."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)
        if not self.shape or not all(isinstance(size, int) and size >= 1 for size in self.shape):
            raise ValueError(f"shape must be a non-empty tuple of positive integers, got {shape!r}")

    def check(self, z: Tensor) -> Tensor:
        """``z`` if it is a tensor of shape ``(*batch, *shape)``, else ``ValueError``."""
        if not isinstance(z, Tensor) or tuple(z.shape[z.dim() - len(self.shape):]) != self.shape:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"z must be a tensor of shape (*batch, {', '.join(map(str, self.shape))}), got {got}")
        return z

    def sum_event(self, terms: Tensor) -> Tensor:
        """``terms`` ``(*batch, *shape)`` summed over the event dimensions, ``(*batch,)``."""
        return terms.flatten(start_dim=terms.dim() - len(self.shape)).sum(dim=-1)

    def noise(self, sample_shape: SampleShape) -> Tensor:
        """Standard normal noise of shape ``(*sample_shape, *shape)`` on the module's device, in its dtype."""
        return torch.randn(*sample_batch(sample_shape), *self.shape, device=self.device, dtype=self.dtype)

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, sample_shape: SampleShape) -> Tensor:
        raise NotImplementedError

    def rsample(self, sample_shape: SampleShape) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (rsample): its samples "
                                  "carry no gradient to its parameters")


def sample_batch(sample_shape: SampleShape) -> tuple[int, ...]:
    """``sample_shape`` as a tuple: ``n`` gives ``(n,)``."""
    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    for size in shape:
        check_integer(size, "every size of sample_shape", 1)
    return shape


class StandardNormal(BaseDistribution):
    """``N(0, I)`` over events of ``shape``; no parameters."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        self.register_buffer("zero", torch.zeros(()), persistent=False)  # carries device and dtype, nothing else

    def log_prob(self, z: Tensor) -> Tensor:
        return self.sum_event(-0.5 * (self.check(z).pow(2) + math.log(2 * math.pi)))

    def rsample(self, sample_shape: SampleShape) -> Tensor:
        return self.noise(sample_shape)

    def sample(self, sample_shape: SampleShape) -> Tensor:
        return self.noise(sample_shape)

    def entropy(self) -> Tensor:
        return normal_entropy(self.zero) * math.prod(self.shape)


class DiagonalNormal(BaseDistribution):
    """``N(loc, diag e^{2 log_scale})`` over events of ``shape``, with learnable ``loc`` and ``log_scale``
    (initially 0: the standard normal)."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        self.loc = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.sum_event(normal_log_density(self.check(z), self.loc, self.log_scale))

    def rsample(self, sample_shape: SampleShape) -> Tensor:
        return self.loc + torch.exp(self.log_scale) * self.noise(sample_shape)

    @torch.no_grad()
    def sample(self, sample_shape: SampleShape) -> Tensor:
        return self.rsample(sample_shape)

    def entropy(self) -> Tensor:
        return normal_entropy(self.log_scale).sum()


class MixtureOfGaussians(BaseDistribution):
    """``Σ_k softmax(logits)_k N(locs_k, diag e^{2 log_scales_k})`` over events of ``shape``, ``components`` of them,
    all learnable. The weights start equal, the scales at 1 and the means at draws of ``N(0, I)`` from the global
    generator (equal means would receive equal gradients and never separate). No ``rsample`` (the choice of a
    component is discrete) and no ``entropy`` (no closed form)."""

    def __init__(self, shape: Sequence[int], components: int):
        super().__init__(shape)
        self.components = check_integer(components, "components", 1)
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, *self.shape))
        self.log_scales = nn.Parameter(torch.zeros(components, *self.shape))

    def log_prob(self, z: Tensor) -> Tensor:
        """``log Σ_k π_k N(z; μ_k, σ_k²)`` by ``logsumexp`` over the components."""
        per_component = normal_log_density(self.check(z).unsqueeze(-len(self.shape) - 1), self.locs, self.log_scales)
        return torch.logsumexp(F.log_softmax(self.logits, dim=0) + self.sum_event(per_component), dim=-1)

    @torch.no_grad()
    def sample(self, sample_shape: SampleShape) -> Tensor:
        """A component ``k ~ π`` for each sample, then ``μ_k + σ_k ε``."""
        batch = sample_batch(sample_shape)
        component = torch.multinomial(F.softmax(self.logits, dim=0), math.prod(batch), replacement=True).view(batch)
        return self.locs[component] + torch.exp(self.log_scales[component]) * self.noise(batch)
