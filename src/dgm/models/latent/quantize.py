"""Vector quantization, the bottleneck of VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017, "Neural Discrete
Representation Learning", §3.1–3.2 and appendix A.1).

A codebook holds ``K`` vectors ``e_1 … e_K`` of dimension ``D``. Each encoder output vector ``z_e`` (one per position
of a feature map ``(N, D, *positions)``) is replaced by its nearest code (eqs. 1–2):

    k = argmin_j ‖z_e − e_j‖²,        z_q = e_k,

the squared distances of all vectors to all codes being ``‖z_e‖² − 2 z_e·e_j + ‖e_j‖²``, one matrix product. The
argmin has no gradient, so the decoder's gradient at ``z_q`` is copied to ``z_e`` (the straight-through estimator,
§3.2): the quantizer returns ``z_e + sg[z_q − z_e]``, equal to ``z_q`` forward and to the identity backward.

The codebook learns from the two other terms of eq. 3, summed over the positions and dimensions of each example:

    codebook loss  ‖sg[z_e] − e_k‖²    (moves the codes towards the encoder outputs),
    commitment     β ‖z_e − sg[e_k]‖²  (keeps the encoder outputs near their codes; β = 0.25).

**Exponential moving averages** (``ema=True``, appendix A.1, eqs. 6–8). The codebook is a buffer, not a parameter,
and there is no codebook loss: after each training batch, with ``n_k`` vectors ``z_{k,j}`` assigned to code ``k``,

    N_k ← γ N_k + (1 − γ) n_k,        m_k ← γ m_k + (1 − γ) Σ_j z_{k,j},        e_k ← m_k / N_k,

with decay ``γ`` (0.99). The counts are Laplace-smoothed before the division, ``N_k ← (N_k + ε) n / (n + K ε)`` with
``n = Σ_k N_k`` (as in the authors' Sonnet code), so a code that is rarely used is never divided by zero. The averages
start as if each code had been assigned itself once (``N_k = 1``, ``m_k = e_k``), so an unused code stays where it
is (up to the smoothing).

**Restart of dead codes** (Dhariwal et al., 2020, "Jukebox", §3; Williams et al., 2020, "Hierarchical Quantized
Autoencoders"). A code that no vector chose in ``restart_after`` consecutive training batches is moved onto an
encoder output of the current batch, drawn at random; its moving averages restart from that vector.
The codes start as standard normal draws, most of them far from the encoder's first outputs: the restarts move them
onto the data after the first ``restart_after`` batches.

**Perplexity** ``exp(−Σ_k p̄_k log p̄_k)`` of the batch's average code usage ``p̄`` measures how many codes are in
use: ``K`` when all are used equally, 1 when one code takes every vector.

The codebook changes only in :meth:`VectorQuantizer.update`, which a model calls in its training step: evaluation
(``loss``, ``log_prob``) never moves it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.core import check_integer
from dgm.distributions.likelihoods import sum_per_example


@dataclass
class Quantized:
    """What quantizing a feature map ``z_e`` ``(N, D, *positions)`` gives: ``z_e``, the code index at every position
    ``(N, *positions)``, the straight-through ``z_q`` ``(N, D, *positions)``, the codebook loss and the commitment
    loss of each example ``(N,)`` (the codebook loss is zero with moving averages) and the perplexity of the
    batch's code usage."""

    z_e: Tensor
    codes: Tensor
    z_q: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor


def as_vectors(z: Tensor) -> Tensor:
    """A feature map ``(N, D, *positions)`` as the rows of ``(N · positions, D)``."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def perplexity(one_hot: Tensor) -> Tensor:
    """``exp(H(p̄))`` of the average ``p̄`` of the rows of ``one_hot`` ``(M, K)``: the number of codes in use."""
    usage = one_hot.mean(dim=0)
    return torch.exp(torch.special.entr(usage).sum())


class VectorQuantizer(nn.Module):
    """A codebook of ``codes`` vectors of dimension ``dim``, learned by gradients (``ema=False``) or by exponential
    moving averages with decay ``decay`` and smoothing ``epsilon`` (``ema=True``); ``commitment`` is β; codes idle
    for ``restart_after`` training batches are restarted (``None``: never). See the module docstring."""

    def __init__(self, codes: int, dim: int, ema: bool = True, decay: float = 0.99, commitment: float = 0.25,
                 restart_after: int | None = 20, epsilon: float = 1e-5):
        super().__init__()
        self.codes, self.dim = check_integer(codes, "codes", 2), check_integer(dim, "dim", 1)
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.ema, self.decay, self.commitment, self.epsilon = ema, decay, commitment, epsilon
        self.restart_after = None if restart_after is None else check_integer(restart_after, "restart_after", 1)
        codebook = torch.randn(codes, dim)
        if ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.ones(codes))  # N_k of eq. 6
            self.register_buffer("cluster_sum", codebook.clone())  # m_k of eq. 7
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("idle_batches", torch.zeros(codes, dtype=torch.long))

    def squared_distances(self, vectors: Tensor) -> Tensor:
        """``‖z_i − e_j‖²`` of every row of ``vectors`` ``(M, D)`` to every code, ``(M, K)``, by one matrix product."""
        return (vectors.pow(2).sum(dim=1, keepdim=True) - 2 * vectors @ self.codebook.T
                + self.codebook.pow(2).sum(dim=1))

    def nearest(self, z_e: Tensor) -> Tensor:
        """The index of the nearest code at every position of ``z_e`` ``(N, D, *positions)``, ``(N, *positions)``
        (eq. 1)."""
        codes = self.squared_distances(as_vectors(z_e)).argmin(dim=1)
        return codes.view(z_e.shape[0], *z_e.shape[2:])

    def embed(self, codes: Tensor) -> Tensor:
        """The code vectors of an index map ``(N, *positions)``, ``(N, D, *positions)`` (eq. 2)."""
        return F.embedding(codes.long(), self.codebook).movedim(-1, 1)

    def forward(self, z_e: Tensor) -> Quantized:
        """Quantize ``z_e`` ``(N, D, *positions)``; the codebook is not changed (see :meth:`update`)."""
        codes = self.nearest(z_e)
        e = self.embed(codes)
        codebook_loss = torch.zeros(len(z_e), device=z_e.device, dtype=z_e.dtype) if self.ema else \
            sum_per_example((z_e.detach() - e).pow(2))
        commitment_loss = self.commitment * sum_per_example((z_e - e.detach()).pow(2))
        one_hot = F.one_hot(codes.flatten(), self.codes).to(z_e.dtype)
        return Quantized(z_e, codes, z_e + (e - z_e).detach(), codebook_loss, commitment_loss, perplexity(one_hot))

    @torch.no_grad()
    def update(self, quantized: Quantized) -> None:
        """One training batch's change of the codebook: the moving averages (eqs. 6–8) where ``ema``, then the
        restart of the codes idle for ``restart_after`` batches."""
        vectors = as_vectors(quantized.z_e.detach())
        one_hot = F.one_hot(quantized.codes.flatten(), self.codes).to(vectors.dtype)  # (M, K)
        counts = one_hot.sum(dim=0)
        if self.ema:
            self.moving_average_step(counts, one_hot.T @ vectors)
        self.idle_batches.copy_(torch.where(counts > 0, 0, self.idle_batches + 1))
        if self.restart_after is not None:
            self.restart(self.idle_batches >= self.restart_after, vectors)

    def moving_average_step(self, counts: Tensor, sums: Tensor) -> None:
        """Eqs. 6–8 with the batch's cluster sizes ``counts`` ``(K,)`` and vector sums ``sums`` ``(K, D)``."""
        self.cluster_size.mul_(self.decay).add_((1 - self.decay) * counts)
        self.cluster_sum.mul_(self.decay).add_((1 - self.decay) * sums)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.codes * self.epsilon) * total
        self.codebook.copy_(self.cluster_sum / smoothed.unsqueeze(1))

    def restart(self, dead: Tensor, vectors: Tensor) -> None:
        """Move the codes marked ``dead`` ``(K,)`` onto rows of ``vectors`` ``(M, D)`` drawn at random."""
        chosen = vectors[torch.randint(len(vectors), (self.codes,), device=vectors.device)]
        self.codebook.copy_(torch.where(dead.unsqueeze(1), chosen, self.codebook))
        if self.ema:
            self.cluster_sum.copy_(torch.where(dead.unsqueeze(1), chosen, self.cluster_sum))
            self.cluster_size.copy_(torch.where(dead, 1.0, self.cluster_size))
        self.idle_batches.masked_fill_(dead, 0)
