"""MADE as a density model (Germain et al., 2015): ``log p(x) = Σ_i log p(x_i | x_<i)`` in one masked pass.

The masked network (:class:`dgm.nn.made.MADENetwork`) outputs, for every dimension ``i``, the parameters of the
conditional ``p(x_i | x_<i)`` given the dimensions that precede ``i`` in the ordering:

- discrete data (``levels`` values): a categorical with ``levels`` logits, ``log p(x_i | x_<i) =
  log_softmax(logits_i)[x_i]`` (:class:`dgm.distributions.Categorical`), the course's seminar 2 model;
- continuous data (``levels=None``): a Gaussian ``N(x_i; μ_i, σ_i²)`` (:class:`dgm.distributions.Gaussian`), with
  ``log σ_i`` clamped to ``[LOG_SCALE_MIN, LOG_SCALE_MAX]`` so that a collapsing or exploding scale cannot produce an
  infinite density.

Images ``(C, H, W)`` are flattened channel-major in raster order: dimension ``c·H·W + h·W + w``. Sampling needs one
network pass per dimension, in the ordering, each pass vectorised over the samples.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from dgm.core import GenerativeModel, check_levels
from dgm.distributions import Categorical, Gaussian, to_interval
from dgm.nn.made import MADENetwork, Ordering
from dgm.registry import register_model

InputEncoding = Literal["one_hot", "scaled"]

LOG_SCALE_MIN, LOG_SCALE_MAX = -10.0, 10.0
LARGE_MODEL_PARAMETERS = 20_000_000
ONE_HOT_MAX_LEVELS = 64


@register_model("made", "MADE: masked MLP, exact autoregressive likelihood, categorical or Gaussian conditionals")
class MADE(GenerativeModel):
    """Masked autoencoder for distribution estimation over data of any ``shape``.

    ``levels`` is the number of discrete values (``None`` for continuous data). ``input_encoding`` chooses how
    discrete values enter the network: ``"one_hot"`` (the default from 3 up to ``ONE_HOT_MAX_LEVELS`` levels, each
    value a one-hot code sharing its dimension's degree) or ``"scaled"`` (``2·x/(levels-1) - 1``, one input per
    dimension; the default for binary data, whose one-hot code would only double the input).
    """

    likelihood = "exact"

    def __init__(self, shape: Sequence[int], levels: int | None = None, hidden: Sequence[int] = [512, 512],
                 order: Ordering = "natural", seed: int = 0, input_encoding: InputEncoding | None = None):
        super().__init__()
        self.shape = tuple(int(size) for size in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {tuple(shape)}")
        self.levels = check_levels(levels, "MADE", allow_continuous=True)
        self.dim = math.prod(self.shape)
        self.input_encoding = self._resolve_encoding(levels, input_encoding)
        in_per_dim = levels if self.input_encoding == "one_hot" else 1
        out_per_dim = levels if levels is not None else 2
        self.net = MADENetwork(self.dim, list(hidden), out_per_dim, in_per_dim, order=order, seed=seed)
        size = sum(p.numel() for p in self.net.parameters())
        if size > LARGE_MODEL_PARAMETERS:
            warnings.warn(f"this MADE has {size / 1e6:.0f}M parameters ({self.dim} dimensions x {out_per_dim} "
                          "outputs each); fewer levels (e.g. the data option bits=4) or narrower hidden layers "
                          "make it much smaller and faster", stacklevel=2)

    @staticmethod
    def _resolve_encoding(levels: int | None, input_encoding: InputEncoding | None) -> InputEncoding | None:
        if levels is None:
            if input_encoding is not None:
                raise ValueError(f"input_encoding applies to discrete data only (levels=None), got {input_encoding!r}")
            return None
        if input_encoding is None:
            return "one_hot" if 2 < levels <= ONE_HOT_MAX_LEVELS else "scaled"
        if input_encoding not in ("one_hot", "scaled"):
            raise ValueError(f"input_encoding must be 'one_hot', 'scaled' or None, got {input_encoding!r}")
        return input_encoding

    def _encode(self, flat: Tensor) -> Tensor:
        """Network input for flattened data ``(N, D)``."""
        if self.input_encoding == "one_hot":
            return F.one_hot(flat.long(), self.levels).to(flat.dtype)
        if self.input_encoding == "scaled":
            return to_interval(flat, self.levels)
        return flat

    def conditionals(self, x: Tensor) -> Tensor:
        """Parameters of every ``p(x_i | x_<i)``, shape ``(N, D, levels)`` (logits) or ``(N, D, 2)`` (μ, log σ).

        ``x`` is data of shape ``(N, *shape)`` or flattened ``(N, D)``; dimension ``i`` of the result depends only on
        dimensions that come before ``i`` in the ordering. For continuous data the log-scale is already clamped.
        """
        outputs = self.net(self._encode(x.reshape(len(x), self.dim)))
        if self.levels is not None:
            return outputs
        mean, log_scale = outputs.unbind(-1)
        return torch.stack([mean, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)], dim=-1)

    def conditional_distribution(self, parameters: Tensor) -> Categorical | Gaussian:
        """The conditionals given their parameters ``(N, D, out_per_dim)``, or ``(N, out_per_dim)`` for one
        dimension: a categorical over the last axis (discrete data) or a Gaussian (continuous data)."""
        if self.levels is not None:
            return Categorical(parameters, dim=-1)
        mean, log_scale = parameters.unbind(-1)
        return Gaussian(mean, log_scale)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, shape ``(N,)``."""
        return self.conditional_distribution(self.conditionals(x)).log_prob(x.reshape(len(x), self.dim))

    @torch.no_grad()
    def sample(self, n: int, progress: bool = False) -> Tensor:
        """``n`` samples of shape ``(n, *shape)``: ``D`` passes, dimension by dimension in the ordering."""
        flat = torch.zeros(n, self.dim, device=self.device, dtype=self.net.output.weight.dtype)
        for i in tqdm(self.net.sampling_order.tolist(), desc="MADE sampling", disable=not progress):
            flat[:, i] = self.conditional_distribution(self.conditionals(flat)[:, i]).sample()
        return flat.view(n, *self.shape)
