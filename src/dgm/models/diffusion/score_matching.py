"""Score matching and Langevin dynamics: the objectives and samplers of score-based models, for any score network.

A score is a callable that estimates ``∇ₓ log p(x)`` and returns a tensor of ``x``'s shape. The objectives and samplers
that involve a noise level call it as ``score(x, sigma)`` with ``sigma`` a tensor ``(N,)``, one level per example (a
noise-conditional network, NCSN); the others call ``score(x)``. An unconditional network serves both through a
``lambda x, sigma: net(x)``. Data ``x`` is a floating batch ``(N, ...)`` of at least two dimensions (``(N, 1)`` for
scalars); each objective returns one value per example, ``(N,)``, to average, differentiable w.r.t. the score's
parameters (the Jacobian terms keep their graph while gradients are enabled).

- :func:`implicit_score_matching` (Hyvärinen, 2005, Theorem 1): ``tr(∇ₓ s(x)) + ½‖s(x)‖²``, equal in expectation to
  the Fisher divergence ``½ E‖s(x) − ∇ₓ log p(x)‖²`` up to a constant; exact trace, one vector-Jacobian product per
  dimension.
- :func:`sliced_score_matching` (Song, Garg, Shi & Ermon, 2019): the trace by random projections ``v`` with
  ``E[vvᵀ] = I``, ``vᵀ(∇ₓ s)v + ½(vᵀs)²`` (SSM) or ``vᵀ(∇ₓ s)v + ½‖s‖²`` (SSM-VR), one vector-Jacobian product
  per projection.
- :func:`denoising_score_matching` (Vincent, 2011): ``½‖s(x + σε, σ) + ε/σ‖²``, equal in expectation to the Fisher
  divergence to the noisy density ``q_σ = p ∗ N(0, σ²I)`` up to a constant; ``weighted`` multiplies by
  ``λ(σ) = σ²`` (Song & Ermon, 2019, eq. 5–6), and :func:`noise_conditional_score_matching` is NCSN's objective,
  with a level drawn from the ladder for each example.
- :func:`langevin_dynamics` (Welling & Teh, 2011; Song & Ermon, 2019, eq. 4) and
  :func:`annealed_langevin_dynamics` (Song & Ermon, 2019, Algorithm 1) draw samples from a score, with
  :func:`geometric_noise_levels` the ladder of NCSN.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dgm.core import check_integer
from dgm.flows.continuous import NOISES, draw_noise, exact_trace, hutchinson_trace

Score = Callable[..., Tensor]  # score(x) or score(x, sigma): ∇ₓ log p, of x's shape


def _check_batch(x: Tensor, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty floating-point batch (N, ...) of at least 2 dimensions, "
                         f"got {shape}")
    return x


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _evaluate(score: Score, x: Tensor, *sigma: Tensor) -> Tensor:
    """``score(x, *sigma)``, checked to have ``x``'s shape."""
    value = score(x, *sigma)
    if not isinstance(value, Tensor) or value.shape != x.shape:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"score must return a tensor of x's shape {tuple(x.shape)}, got {shape}")
    return value


def _per_example(sigma, x: Tensor) -> Tensor:
    """The noise level(s) ``sigma`` (a number or a tensor ``()`` or ``(N,)``) as a positive tensor ``(N,)``."""
    given = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    levels = given.expand(len(x)) if given.dim() == 0 else given
    if levels.shape != (len(x),):
        raise ValueError(f"sigma must be a number or a tensor (N,) = ({len(x)},) of levels, got shape "
                         f"{tuple(given.shape)}")
    if not torch.isfinite(levels).all() or not (levels > 0).all():
        raise ValueError(f"sigma must hold positive finite levels, got values in [{levels.min():g}, {levels.max():g}]")
    return levels


def _check_ladder(sigmas: Sequence[float] | Tensor, x: Tensor) -> Tensor:
    ladder = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device)
    if (ladder.dim() != 1 or len(ladder) == 0 or not torch.isfinite(ladder).all() or not (ladder > 0).all()
            or not (ladder[1:] < ladder[:-1]).all()):
        raise ValueError(f"sigmas must be a non-empty, strictly descending sequence of positive levels, got {sigmas}")
    return ladder


def _broadcastable(levels: Tensor, x: Tensor) -> Tensor:
    return levels.view(-1, *[1] * (x.dim() - 1))


def _with_input_graph(objective: Callable[[Tensor, Tensor, bool], Tensor], score: Score, x: Tensor) -> Tensor:
    """``objective(inputs, s, create_graph)`` with ``inputs`` the flattened ``x`` ``(N, D)`` as a leaf that requires
    gradients and ``s`` the score there, flattened: its Jacobian terms keep their graph while gradients are
    enabled; without, the value alone."""
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        inputs = _check_batch(x).detach().flatten(1).requires_grad_(True)
        value = objective(inputs, _evaluate(score, inputs.view_as(x)).flatten(1), create_graph)
    return value if create_graph else value.detach()


def implicit_score_matching(score: Score, x: Tensor) -> Tensor:
    """``tr(∇ₓ s(x)) + ½‖s(x)‖²`` of each example, ``(N,)`` (Hyvärinen, 2005, Theorem 1): its mean over data exceeds
    the Fisher divergence ``½ E‖s − ∇ₓ log p‖²`` by a constant. The trace is exact, one vector-Jacobian product per
    dimension of ``x`` (low dimensions); :func:`sliced_score_matching` estimates it in high ones."""
    def objective(inputs: Tensor, s: Tensor, create_graph: bool) -> Tensor:
        return exact_trace(s, inputs, create_graph) + 0.5 * s.square().sum(dim=1)
    return _with_input_graph(objective, score, x)


def sliced_score_matching(score: Score, x: Tensor, projections: int = 1, variance_reduced: bool = True,
                          noise: str = "gaussian") -> Tensor:
    """Sliced score matching of each example, ``(N,)`` (Song, Garg, Shi & Ermon, 2019), averaged over
    ``projections`` random directions ``v`` (``noise``: Gaussian or Rademacher, ``E[vvᵀ] = I``):
    ``vᵀ(∇ₓ s)v + ½(vᵀs)²`` (SSM), or with ``variance_reduced`` ``vᵀ(∇ₓ s)v + ½‖s‖²`` (SSM-VR: ``½‖s‖²`` is the
    expectation of ``½(vᵀs)²``). Both are unbiased for :func:`implicit_score_matching`, at one vector-Jacobian
    product per projection. SSM-VR has the lower variance where ``‖s‖`` is large beside ``∇ₓ s`` (high dimensions,
    early training), not everywhere: for Gaussian ``v`` the variance of SSM exceeds SSM-VR's by
    ``½‖s‖⁴ + 2sᵀ(∇ₓ s)s``."""
    check_integer(projections, "projections", 1)
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")

    def objective(inputs: Tensor, s: Tensor, create_graph: bool) -> Tensor:
        half_square_norm, total = 0.5 * s.square().sum(dim=1), 0
        for _ in range(projections):
            v = draw_noise(s, noise)
            half_square = half_square_norm if variance_reduced else 0.5 * (v * s).sum(dim=1).square()
            total = total + hutchinson_trace(s, inputs, v, create_graph) + half_square
        return total / projections
    return _with_input_graph(objective, score, x)


def denoising_score_matching(score: Score, x: Tensor, sigma: float | Tensor, weighted: bool = False) -> Tensor:
    """``½‖s(x̃, σ) + ε/σ‖²`` at ``x̃ = x + σε``, ``ε ~ N(0, I)``, of each example, ``(N,)`` (Vincent, 2011; in the
    form of Song & Ermon, 2019, eq. 2): its mean over data and noise exceeds the Fisher divergence
    ``½ E‖s(x̃, σ) − ∇ log q_σ(x̃)‖²`` to the noisy density ``q_σ = p ∗ N(0, σ²I)`` by a constant, so the optimal
    score is that of ``q_σ``.

    ``sigma``: one level, or a tensor ``(N,)`` of one per example; the score is called with the levels ``(N,)``.
    ``weighted`` multiplies by ``λ(σ) = σ²`` (Song & Ermon, 2019, eq. 5–6), ``½‖σ s(x̃, σ) + ε‖²``, which keeps the
    terms of all levels of the same order."""
    levels = _per_example(sigma, _check_batch(x))
    epsilon = torch.randn_like(x)
    scale = _broadcastable(levels, x)
    s = _evaluate(score, x + scale * epsilon, levels)
    residual = scale * s + epsilon if weighted else s + epsilon / scale
    return 0.5 * residual.flatten(1).square().sum(dim=1)


def noise_conditional_score_matching(score: Score, x: Tensor, sigmas: Sequence[float] | Tensor) -> Tensor:
    """NCSN's objective of each example, ``(N,)`` (Song & Ermon, 2019, eq. 6 with ``λ(σ) = σ²``): the weighted
    :func:`denoising_score_matching` at a level drawn uniformly from the descending ladder ``sigmas`` for each
    example; its mean estimates eq. 6's average over the levels."""
    ladder = _check_ladder(sigmas, _check_batch(x))
    return denoising_score_matching(score, x, ladder[torch.randint(len(ladder), (len(x),), device=x.device)],
                                    weighted=True)


def geometric_noise_levels(sigma_max: float, sigma_min: float, levels: int) -> Tensor:
    """``levels`` noise levels from ``sigma_max`` down to ``sigma_min`` with a constant ratio (NCSN's ladder,
    Song & Ermon, 2019), a descending tensor ``(levels,)`` of the default dtype."""
    _check_positive(sigma_min, "sigma_min")
    if _check_positive(sigma_max, "sigma_max") <= sigma_min:
        raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max!r} <= {sigma_min!r}")
    check_integer(levels, "levels", 2)
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), levels, dtype=torch.float64).to(
        torch.get_default_dtype())


def _check_record_every(record_every: int | None) -> int | None:
    return None if record_every is None else check_integer(record_every, "record_every", 1)


def _langevin_step(x: Tensor, s: Tensor, step_size: float, generator: torch.Generator | None) -> Tensor:
    """``x + (ε/2) s + √ε z``, ``z ~ N(0, I)``."""
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + 0.5 * step_size * s + math.sqrt(step_size) * z


@torch.no_grad()
def langevin_dynamics(score: Score, x0: Tensor, step_size: float, steps: int,
                      generator: torch.Generator | None = None,
                      record_every: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """``steps`` steps ``x ← x + (ε/2) s(x) + √ε z``, ``z ~ N(0, I)``, from ``x0`` ``(N, ...)``, one chain per
    example (Welling & Teh, 2011; Song & Ermon, 2019, eq. 4): as ``ε → 0`` and ``steps → ∞`` the chains' states
    follow the density whose score is ``s``, with a bias of order ``ε``.

    The score is called as ``score(x)`` without gradients (one that differentiates an energy enables them itself);
    ``generator`` draws the noise. Returns the final states, or with ``record_every = k`` the pair (final states,
    ``x0`` and the states after every ``k``-th step stacked ``(1 + steps // k, N, ...)``)."""
    x = _check_batch(x0, "x0")
    step_size = _check_positive(step_size, "step_size")
    check_integer(steps, "steps", 1)
    record_every = _check_record_every(record_every)
    path = [x]
    for step in range(1, steps + 1):
        x = _langevin_step(x, _evaluate(score, x), step_size, generator)
        if record_every and step % record_every == 0:
            path.append(x)
    return x if record_every is None else (x, torch.stack(path))


@torch.no_grad()
def annealed_langevin_dynamics(score: Score, x0: Tensor, sigmas: Sequence[float] | Tensor, steps_per_level: int,
                               epsilon: float, denoise: bool = False, generator: torch.Generator | None = None,
                               record_every: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Annealed Langevin dynamics (Song & Ermon, 2019, Algorithm 1): for each level ``σ_i`` of the descending
    ladder ``sigmas``, ``steps_per_level`` Langevin steps with ``score(x, σ_i)`` and the step size
    ``α_i = ε σ_i² / σ_L²``, from ``x0`` ``(N, ...)``; the score is called without gradients, with the level as a
    tensor ``(N,)``.

    ``denoise`` ends with one step ``x + σ_L² s(x, σ_L)`` (Jolicoeur-Martineau et al., 2021; Tweedie's formula: the
    mean of the clean data given ``x``), which removes the noise of the last level. ``generator`` and
    ``record_every`` are those of :func:`langevin_dynamics` (the steps counted over all levels; the record holds no
    denoised state)."""
    x = _check_batch(x0, "x0")
    ladder = _check_ladder(sigmas, x)
    check_integer(steps_per_level, "steps_per_level", 1)
    epsilon = _check_positive(epsilon, "epsilon")
    record_every = _check_record_every(record_every)
    path, step = [x], 0
    for sigma in ladder:
        levels, step_size = sigma.expand(len(x)), epsilon * (sigma / ladder[-1]).item() ** 2
        for _ in range(steps_per_level):
            x, step = _langevin_step(x, _evaluate(score, x, levels), step_size, generator), step + 1
            if record_every and step % record_every == 0:
                path.append(x)
    if denoise:
        x = x + ladder[-1] ** 2 * _evaluate(score, x, ladder[-1].expand(len(x)))
    return x if record_every is None else (x, torch.stack(path))
