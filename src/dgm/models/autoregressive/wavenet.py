"""WaveNet (van den Oord et al., 2016, "WaveNet: A Generative Model for Raw Audio", §2.1–2.5).

``p(x) = Π_t p(x_t | x_<t)`` over a sequence quantised to ``levels`` values (mu-law, :mod:`dgm.data.waveforms`):

- the input, one-hot codes shifted one step right (so step ``t`` sees ``x_<t`` only), enters a causal convolution;
- ``stacks`` repetitions of ``layers`` dilated causal convolutions with dilations ``1, 2, 4, …, 2^(layers-1)`` (§2.1,
  :class:`dgm.nn.causal.CausalConv1d`) feed gated activation units, eq. 2:
  ``z = tanh(W_f * h + V_f y) ⊙ σ(W_g * h + V_g y)``, where the global condition ``y`` (a class, §2.5) is optional;
- each unit adds a 1x1 projection of ``z`` to its input (residual connection) and sends another to the output
  (skip connection, §2.4, Fig. 4);
- ``ReLU → 1x1 → ReLU → 1x1`` of the summed skips gives a ``levels``-way softmax at every step (§2.2).

The receptive field is ``2 + stacks · (kernel_size - 1) · (2^layers - 1)`` steps (the shift and the input convolution
add one each).

**Sampling.** Naive sampling runs the whole network over the prefix once per step. Cached sampling (Paine et al.,
2016; Ramachandran et al., 2017) keeps, per layer, a queue of the last ``(k-1)·d + 1`` inputs it has seen and
computes only the newest output of every layer: work per step independent of the position, and the same arithmetic
on the same numbers. Both draw each value by inverse-CDF sampling from one ``torch.rand`` call per step
(:meth:`dgm.distributions.Categorical.sample`), so the same seed gives the same samples.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from dgm.core import GenerativeModel, check_integer, check_labels
from dgm.distributions import Categorical
from dgm.nn.causal import CausalConv1d, shift_right
from dgm.registry import register_model


class GatedResidualUnit(nn.Module):
    """One WaveNet layer: dilated causal convolution, gated unit (eq. 2), residual and skip 1x1 convolutions. The
    ``last`` unit has no residual output (no layer reads it; an unused parameter would also stop DDP)."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, classes: int | None,
                 last: bool = False):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, kernel_size, dilation)
        self.condition = nn.Embedding(classes, 2 * channels) if classes else None
        self.residual = None if last else nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def _gate(self, pre_activation: Tensor, labels: Tensor | None) -> Tensor:
        if self.condition is not None:
            pre_activation = pre_activation + self.condition(labels).unsqueeze(-1)
        filter_, gate = pre_activation.chunk(2, dim=1)
        return torch.tanh(filter_) * torch.sigmoid(gate)

    def _outputs(self, h: Tensor, z: Tensor) -> tuple[Tensor | None, Tensor]:
        return None if self.residual is None else h + self.residual(z), self.skip(z)

    def forward(self, h: Tensor, labels: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        """``(h + residual, skip)`` at every step of ``h`` ``(N, C, T)``."""
        return self._outputs(h, self._gate(self.dilated(h), labels))

    def step(self, window: Tensor, labels: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        """``(h + residual, skip)`` at the last step of ``window``, the queue of this layer's recent inputs."""
        return self._outputs(window[..., -1:], self._gate(self.dilated.step(window), labels))


@register_model("wavenet", "WaveNet: dilated causal 1D convolutions, gated units, skips, mu-law 256-way softmax")
class WaveNet(GenerativeModel):
    """WaveNet over sequences of shape ``(T,)`` or ``(1, T)`` holding integers ``0..levels-1``.

    ``n_classes`` (optional) enables global conditioning on a label ``0..n_classes-1``: pass ``labels`` to
    ``log_prob``/``loss``/``sample`` (the trainer passes the data set's labels); ``sample`` draws labels uniformly
    when none are given.
    """

    likelihood = "exact"

    def __init__(self, shape: Sequence[int], levels: int = 256, channels: int = 32, skip_channels: int = 64,
                 kernel_size: int = 2, layers: int = 7, stacks: int = 2, n_classes: int | None = None):
        super().__init__()
        self.shape = tuple(int(size) for size in shape)
        if len(self.shape) not in (1, 2) or (len(self.shape) == 2 and self.shape[0] != 1) or min(self.shape) < 1:
            raise ValueError(f"WaveNet models sequences of shape (T,) or (1, T), got {tuple(shape)}")
        self.length = self.shape[-1]
        self.levels = check_integer(levels, "levels", 2)
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 1)
        check_integer(stacks, "stacks", 1)
        check_integer(layers, "layers", 1)
        self.input = CausalConv1d(levels, channels, kernel_size=2)
        self.units = nn.ModuleList(
            GatedResidualUnit(channels, skip_channels, kernel_size, 2 ** i, n_classes,
                              last=stack == stacks - 1 and i == layers - 1)
            for stack in range(stacks) for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, levels, 1))

    @property
    def receptive_field(self) -> int:
        """How many past steps the prediction of a step can see."""
        return 1 + self.input.history + sum(unit.dilated.history for unit in self.units)

    def _labels(self, labels: Tensor | None, n: int, draw: bool = False) -> Tensor | None:
        if self.n_classes is None:
            if labels is not None:
                raise ValueError("this WaveNet is unconditional (n_classes=None) and takes no labels")
            return None
        if labels is None:
            if not draw:
                raise ValueError(f"this WaveNet is conditioned on {self.n_classes} classes: pass labels")
            return torch.randint(0, self.n_classes, (n,), device=self.device)
        return check_labels(labels, n, self.n_classes).to(self.device)

    def _one_hot(self, x: Tensor) -> Tensor:
        """``(N, T)`` integers → ``(N, levels, T)`` one-hot codes in the model's dtype."""
        return F.one_hot(x.long(), self.levels).to(self.dtype).transpose(1, 2)

    def logits(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits of every ``p(x_t | x_<t)``, shape ``(N, levels, T)``, for sequences ``(N, T)``."""
        h = self.input(shift_right(self._one_hot(x)))
        skips = 0
        for unit in self.units:
            h, skip = unit(h, labels)
            skips = skips + skip
        return self.head(skips)

    def log_prob(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Exact ``log p(x)`` in nats, shape ``(N,)``."""
        sequences = x.reshape(len(x), self.length)
        return Categorical(self.logits(sequences, self._labels(labels, len(x))), dim=1).log_prob(sequences)

    def loss(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        nll = -self.log_prob(x, labels).mean()
        return {"loss": nll, "bpd": nll / (self.length * math.log(2))}

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, cached: bool = True, progress: bool = False) -> Tensor:
        """``n`` sequences of shape ``(n, *shape)``; ``cached=False`` recomputes the network over the prefix at
        every step (the same samples, slower)."""
        labels = self._labels(labels, n, draw=True)
        x = torch.zeros(n, self.length, device=self.device, dtype=self.dtype)
        next_logits = self._cached_steps(x, labels) if cached else self._naive_steps(x, labels)
        for t in tqdm(range(self.length), desc="WaveNet sampling", disable=not progress):
            x[:, t] = Categorical(next(next_logits), dim=1).sample()
        return x.view(n, *self.shape)

    def _naive_steps(self, x: Tensor, labels: Tensor | None):
        """Yields the logits of step ``t`` from a full pass over ``x[:, :t+1]`` (``x`` is filled in between)."""
        for t in range(self.length):
            yield self.logits(x[:, :t + 1], labels)[:, :, t]

    def _cached_steps(self, x: Tensor, labels: Tensor | None):
        """Yields the logits of step ``t`` from one new activation per layer, each layer reading its queue."""
        n = len(x)
        queues = [torch.zeros(n, layer.in_channels, layer.history + 1, device=x.device, dtype=self.dtype)
                  for layer in [self.input, *(unit.dilated for unit in self.units)]]
        previous = torch.zeros(n, self.levels, 1, device=x.device, dtype=self.dtype)  # the shifted-in zeros
        for t in range(self.length):
            if t > 0:
                previous = self._one_hot(x[:, t - 1:t])
            queues[0] = torch.cat([queues[0][..., 1:], previous], dim=-1)
            h, skips = self.input.step(queues[0]), 0
            for i, unit in enumerate(self.units, start=1):
                queues[i] = torch.cat([queues[i][..., 1:], h], dim=-1)
                h, skip = unit.step(queues[i], labels)
                skips = skips + skip
            yield self.head(skips)[:, :, 0]
