"""Samplers of diffusion models: objects apart from the network, chosen when sampling (the model/scheduler split of
diffusers), each walking from noise at ``t = 1`` to data at ``t = 0`` on the schedule's ``α(t), σ(t)``
(:mod:`dgm.models.diffusion.schedules`), so that every sampler serves DDPM's variance-preserving process and NCSN's
variance-exploding one.

A sampler sees the network only through a *denoiser* ``denoiser(x_t, t) → Prediction`` for a batch ``x_t`` at one
time ``t`` (a 0-d tensor): the predicted noise ``ε̂`` and clean data ``x̂_0``, tied by ``x_t = α x̂_0 + σ ε̂``, so
the score is ``∇ log p_t(x_t) ≈ −ε̂ / σ`` (Vincent, 2011; Song et al., 2021, eq. 7 with Tweedie's formula). Each
sampler is a frozen dataclass of its options whose call ``sampler(denoiser, schedule, x_1)`` returns ``x_0``:

- :class:`Ancestral` — DDPM's reverse chain (Ho, Jain & Abbeel, 2020, Algorithm 2): ``x_s ~ q(x_s | x_t, x̂_0)``,
  the posterior of eqs. 6–7 with mean ``μ̃ = (α_s σ²_{t|s} / σ_t²) x̂_0 + (α_{t|s} σ_s² / σ_t²) x_t`` where
  ``α_{t|s} = α_t/α_s`` and ``σ²_{t|s} = σ_t² − α²_{t|s} σ_s²``; the variance is the posterior's
  ``σ²_{t|s} σ_s²/σ_t²`` (``β̃``), the forward step's ``σ²_{t|s}`` (``β``; DDPM §3.2 found both equally good), or
  the model's learned one (improved DDPM).
- :class:`DDIM` (Song, Meng & Ermon, 2021, eq. 12): ``x_s = α_s x̂_0 + √(σ_s² − c²) ε̂ + c z`` with
  ``c = η σ_s √(1 − (α_t σ_s / (α_s σ_t))²)``: deterministic at ``η = 0``, DDPM's ancestral chain at ``η = 1``.
- :class:`ProbabilityFlow` — the probability-flow ODE ``dx/dt = f(t) x − ½ g(t)² ∇ log p_t(x)`` (Song et al., 2021,
  eq. 13) from ``t = 1`` to ``t = ε``, solved by torchdiffeq, then ``x̂_0`` at ``ε``.
- :class:`DPMSolver` — DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++", Algorithm 2): a second-order multistep
  solver of the same ODE in ``λ = log(α/σ)`` with the data prediction, exact in its linear part.
- :class:`EulerMaruyama` — the reverse-time SDE ``dx = [f x − g² ∇ log p_t] dt + g dw̄`` (Song et al., eq. 6) by
  Euler–Maruyama steps, the last without noise.
- :class:`PredictorCorrector` (Song et al., Algorithms 2–3): each reverse-SDE step (predictor) followed by
  ``corrector_steps`` Langevin steps at the new time whose size makes the signal-to-noise ratio ``snr``.
- :class:`AnnealedLangevin` — NCSN's sampler (Song & Ermon, 2019, Algorithm 1) on the schedule's discrete levels.

Every sampler takes ``steps`` (how many network evaluations of the walk, on ``schedule.times(steps)``; the
probability-flow ODE with an adaptive solver chooses its own). ``sampler.path(denoiser, schedule, x_1)`` yields the
pairs ``(t, x_t)`` of the walk after each step, ending at ``(0, x_0)``: the reverse trajectories of pictures.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torchdiffeq import odeint

from dgm.core import check_integer
from dgm.models.diffusion.schedules import NoiseSchedule, broadcast
from dgm.models.diffusion.score_matching import annealed_langevin_dynamics

VARIANCES = ("posterior", "forward", "learned")
FINAL_TIME = 1e-3  # where the probability-flow ODE and the SDE samplers stop before denoising (Song et al. §C)
PATH_POINTS = 20  # the times at which the probability-flow sampler reports its path


class Prediction(NamedTuple):
    """What the network says about ``x_t``: the noise ``epsilon``, the clean data ``x0`` and, for a model with
    learned variances, the interpolation ``v`` between the log-variances of a reverse step (``None`` otherwise;
    see :func:`reverse_log_variance`)."""

    epsilon: Tensor
    x0: Tensor
    interpolation: Tensor | None = None


Denoiser = Callable[[Tensor, Tensor], Prediction]


def walk(schedule: NoiseSchedule, steps: int) -> list[tuple[Tensor, Tensor]]:
    """The pairs ``(t, s)`` of consecutive times from ``t = 1`` down to ``s = 0``, ``steps`` of them."""
    times = torch.cat([schedule.times(steps), torch.zeros(1)]).double()
    return list(zip(times[:-1], times[1:]))


def coefficients(schedule: NoiseSchedule, *times: Tensor) -> list[Tensor]:
    """``α`` and ``σ`` at each time, in that order: ``α_t, σ_t, α_s, σ_s, …`` (float64 scalars)."""
    return [value for t in times for value in (schedule.alpha(t), schedule.sigma(t))]


@dataclass(frozen=True)
class Sampler:
    """A sampler's options; :meth:`path` walks ``x_1`` to ``x_0``, :meth:`__call__` returns where it ends."""

    steps: int = 50

    def __post_init__(self):
        check_integer(self.steps, "steps", 1)

    def __call__(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Tensor:
        for _, x in self.path(denoiser, schedule, x):
            pass
        return x

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """``(t, x_t)`` after each step from ``x_1 = x``, the last at ``t = 0``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Ancestral(Sampler):
    """DDPM's ancestral sampling with the ``variance`` ``"posterior"`` (β̃), ``"forward"`` (β) or ``"learned"``
    (see :func:`reverse_log_variance`)."""

    steps: int = 1000
    variance: str = "posterior"

    def __post_init__(self):
        super().__post_init__()
        if self.variance not in VARIANCES:
            raise ValueError(f"variance must be one of {', '.join(VARIANCES)}, got {self.variance!r}")

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for t, s in walk(schedule, self.steps):
            prediction = denoiser(x, t.to(x.dtype))
            x = posterior_mean(schedule, t, s, x, prediction.x0)
            if s > 0:
                log_variance = reverse_log_variance(schedule, t, s, self.variance, prediction.interpolation)
                x = x + (0.5 * log_variance).exp().to(x.dtype) * torch.randn_like(x)
            yield s, x


def posterior_mean(schedule: NoiseSchedule, t: Tensor, s: Tensor, x_t: Tensor, x0: Tensor) -> Tensor:
    """The mean of ``q(x_s | x_t, x_0)``, ``s < t`` (times as scalars or one per example; see :class:`Ancestral`)."""
    alpha_t, sigma_t, alpha_s, sigma_s = coefficients(schedule, t, s)
    alpha_ts = alpha_t / alpha_s
    forward_variance = sigma_t ** 2 - alpha_ts ** 2 * sigma_s ** 2
    return broadcast(alpha_s * forward_variance / sigma_t ** 2, x0).to(x0.dtype) * x0 \
        + broadcast(alpha_ts * sigma_s ** 2 / sigma_t ** 2, x0).to(x0.dtype) * x_t


def forward_log_variance(schedule: NoiseSchedule, t: Tensor, s: Tensor) -> Tensor:
    """``log σ²_{t|s} = log(σ_t² − (α_t/α_s)² σ_s²)``, the variance of ``q(x_t | x_s)`` (DDPM's ``β`` between
    neighbouring steps), float64."""
    alpha_t, sigma_t, alpha_s, sigma_s = coefficients(schedule, t, s)
    return torch.log(sigma_t ** 2 - (alpha_t / alpha_s * sigma_s) ** 2)


def posterior_log_variance(schedule: NoiseSchedule, t: Tensor, s: Tensor) -> Tensor:
    """``log(σ²_{t|s} σ_s² / σ_t²)``, the variance of ``q(x_s | x_t, x_0)`` (DDPM's ``β̃``; ``−inf`` at ``s = 0``
    of a variance-preserving process), float64."""
    return forward_log_variance(schedule, t, s) + 2 * (schedule.sigma(s).log() - schedule.sigma(t).log())


def reverse_log_variance(schedule: NoiseSchedule, t: Tensor, s: Tensor, variance: str,
                         interpolation: Tensor | None = None) -> Tensor:
    """``log Σ`` of the reverse step ``p(x_s | x_t)``: the posterior's ``log β̃``, the forward step's ``log β``,
    or (``"learned"``) ``v log β + (1 − v) log β̃`` with the network's ``v`` (``interpolation``, one per entry).
    At ``s = 0`` the posterior's variance is 0 and ``β`` serves (DDPM's decoder variance ``σ_1² = β_1``).
    Float64 with the shape of ``t`` for the fixed ones; the shape of ``interpolation`` for the learned one."""
    forward = forward_log_variance(schedule, t, s)
    posterior = torch.where(s == 0, forward, posterior_log_variance(schedule, t, s))
    if variance == "forward":
        return forward
    if variance == "posterior":
        return posterior
    if interpolation is None:
        raise ValueError("variance='learned' needs a model trained with learned variances")
    v = interpolation
    return v * broadcast(forward, v).to(v.dtype) + (1 - v) * broadcast(posterior, v).to(v.dtype)


@dataclass(frozen=True)
class DDIM(Sampler):
    """DDIM with noise ``eta`` in ``[0, 1]`` (module docstring)."""

    eta: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}")

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for t, s in walk(schedule, self.steps):
            prediction = denoiser(x, t.to(x.dtype))
            alpha_t, sigma_t, alpha_s, sigma_s = coefficients(schedule, t, s)
            noise_scale = self.eta * sigma_s * (1 - (alpha_t * sigma_s / (alpha_s * sigma_t)) ** 2).clamp(min=0).sqrt()
            x = alpha_s.to(x.dtype) * prediction.x0 \
                + (sigma_s ** 2 - noise_scale ** 2).clamp(min=0).sqrt().to(x.dtype) * prediction.epsilon
            if noise_scale > 0:
                x = x + noise_scale.to(x.dtype) * torch.randn_like(x)
            yield s, x


def score_from(prediction: Prediction, sigma: Tensor) -> Tensor:
    """``∇ log p_t(x_t) ≈ −ε̂ / σ_t``."""
    return -prediction.epsilon / sigma.to(prediction.epsilon.dtype)


def probability_flow_velocity(denoiser: Denoiser, schedule: NoiseSchedule, t: Tensor, x: Tensor) -> Tensor:
    """``dx/dt = f(t) x − ½ g(t)² ∇ log p_t(x)`` at one time ``t``."""
    score = score_from(denoiser(x, t), schedule.sigma(t))
    return schedule.drift(t) * x - 0.5 * schedule.diffusion_squared(t) * score


@dataclass(frozen=True)
class ProbabilityFlow(Sampler):
    """The probability-flow ODE by torchdiffeq's ``solver``: an adaptive one (``"dopri5"``, at tolerances
    ``atol``, ``rtol``) chooses its own steps; a fixed-step one (``"euler"``, ``"midpoint"``, ``"rk4"``) takes
    ``steps`` evenly spaced steps in ``t``."""

    solver: str = "dopri5"
    atol: float = 1e-5
    rtol: float = 1e-5

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """The solution at ``PATH_POINTS`` even times from 1 to ``FINAL_TIME`` (the solver's steps are its own),
        then ``x̂_0``."""
        def velocity(t: Tensor, y: Tensor) -> Tensor:
            return probability_flow_velocity(denoiser, schedule, t, y)

        times = torch.linspace(1.0, FINAL_TIME, PATH_POINTS + 1, dtype=x.dtype)
        solution = odeint(velocity, x, times, method=self.solver, atol=self.atol, rtol=self.rtol,
                          options=solver_options(self.solver, times, self.steps))
        yield from zip(times[1:], solution[1:])
        yield torch.zeros(()), denoiser(solution[-1], times[-1]).x0


def solver_options(solver: str, times: Tensor, steps: int) -> dict:
    """torchdiffeq's options for a solve over ``times`` (two times): ``steps`` even steps for a fixed-step
    solver; for an adaptive one a step that lands on the end time and a first step of a thousandth of the span, so
    that no evaluation reads the schedule outside ``[0, 1]`` (where ``σ`` reaches 0 or explodes: the solver's own
    guess of a first step probes beyond the end when the velocity is small)."""
    span = float((times[0] - times[-1]).abs())  # the times run from one end to the other
    if solver in FIXED_STEP_SOLVERS:
        return {"step_size": span / steps}
    return {"step_t": times[-1:], "first_step": span / 1000}


FIXED_STEP_SOLVERS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")


@dataclass(frozen=True)
class DPMSolver(Sampler):
    """DPM-Solver++(2M): with ``h_i = λ_{t_i} − λ_{t_{i−1}}`` and data predictions ``D_i``,

        x_{t_i} = (σ_{t_i} / σ_{t_{i−1}}) x_{t_{i−1}} − α_{t_i} (e^{−h_i} − 1) D,
        D = (1 + 1/(2 r_i)) D_{i−1} − 1/(2 r_i) D_{i−2},   r_i = h_{i−1} / h_i,

    first-order (``D = D_{i−1}``) at the first step and at the last (``lower_order_final``, the rule of the
    authors' code for few steps)."""

    steps: int = 20

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        pairs = walk(schedule, self.steps)
        previous: tuple[Tensor, Tensor] | None = None  # (D, h) of the previous step
        for index, (t, s) in enumerate(pairs):
            alpha_t, sigma_t, alpha_s, sigma_s = coefficients(schedule, t, s)
            data = denoiser(x, t.to(x.dtype)).x0
            exp_minus_h = (sigma_s / alpha_s) / (sigma_t / alpha_t)  # e^{λ_t − λ_s}, 0 at s = 0
            h = -exp_minus_h.log()
            estimate = data
            if previous is not None and index < len(pairs) - 1:
                r = previous[1] / h
                estimate = (1 + 0.5 / r).to(x.dtype) * data - (0.5 / r).to(x.dtype) * previous[0]
            x = (sigma_s / sigma_t).to(x.dtype) * x - (alpha_s * (exp_minus_h - 1)).to(x.dtype) * estimate
            previous = (data, h)
            yield s, x


def reverse_sde_step(denoiser: Denoiser, schedule: NoiseSchedule, t: Tensor, s: Tensor, x: Tensor) -> Tensor:
    """One Euler–Maruyama step of the reverse SDE from ``t`` to ``s < t``."""
    step = (t - s).to(x.dtype)
    score = score_from(denoiser(x, t.to(x.dtype)), schedule.sigma(t))
    g_squared = schedule.diffusion_squared(t).to(x.dtype)
    x = x - (schedule.drift(t).to(x.dtype) * x - g_squared * score) * step
    return x + (g_squared * step).sqrt() * torch.randn_like(x)


def sde_times(steps: int) -> list[tuple[Tensor, Tensor]]:
    """``steps`` evenly spaced pairs ``(t, s)`` from ``t = 1`` to ``s = FINAL_TIME``."""
    times = torch.linspace(1.0, FINAL_TIME, steps + 1, dtype=torch.float64)
    return list(zip(times[:-1], times[1:]))


@dataclass(frozen=True)
class EulerMaruyama(Sampler):
    """Euler–Maruyama on the reverse SDE over ``steps`` even steps from ``t = 1`` to ``FINAL_TIME``, then
    ``x̂_0``."""

    steps: int = 1000

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for t, s in sde_times(self.steps):
            x = self.correct(denoiser, schedule, t, s, reverse_sde_step(denoiser, schedule, t, s, x))
            yield s, x
        yield torch.zeros(()), denoiser(x, torch.tensor(FINAL_TIME, dtype=x.dtype)).x0

    def correct(self, denoiser: Denoiser, schedule: NoiseSchedule, t: Tensor, s: Tensor, x: Tensor) -> Tensor:
        """What follows each step at its new time ``s``: nothing here (the predictor–corrector's Langevin)."""
        return x


def langevin_correction(denoiser: Denoiser, schedule: NoiseSchedule, t: Tensor, x: Tensor, snr: float,
                        scale: Tensor) -> Tensor:
    """One Langevin step ``x + ε s + √(2ε) z`` at time ``t`` with ``ε = 2 scale (snr ‖z‖ / ‖s‖)²``, the norms
    averaged over the batch (Song et al., 2021, Algorithms 4–5 and their code; ``scale`` is ``α_i = 1 − β_i`` for
    VP, 1 for VE). Per example, a point near a mode, where ``‖s‖ ≈ 0``, would take an unbounded step."""
    score = score_from(denoiser(x, t.to(x.dtype)), schedule.sigma(t))
    noise = torch.randn_like(x)
    ratio = noise.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean().clamp(min=1e-12)
    step = (2 * scale * (snr * ratio) ** 2).to(x.dtype)
    return x + step * score + (2 * step).sqrt() * noise


@dataclass(frozen=True)
class PredictorCorrector(EulerMaruyama):
    """Reverse-SDE predictor steps (:class:`EulerMaruyama`'s), each followed by ``corrector_steps`` Langevin steps
    at signal-to-noise ratio ``snr`` (Song et al. use 0.16 on CIFAR-10 with the VE SDE)."""

    steps: int = 1000
    corrector_steps: int = 1
    snr: float = 0.16

    def __post_init__(self):
        super().__post_init__()
        check_integer(self.corrector_steps, "corrector_steps", 0)
        if not self.snr > 0:
            raise ValueError(f"snr must be positive, got {self.snr}")

    def correct(self, denoiser: Denoiser, schedule: NoiseSchedule, t: Tensor, s: Tensor, x: Tensor) -> Tensor:
        scale = (schedule.alpha(s) / schedule.alpha(t)) ** 2
        for _ in range(self.corrector_steps):
            x = langevin_correction(denoiser, schedule, s, x, self.snr, scale)
        return x


@dataclass(frozen=True)
class AnnealedLangevin(Sampler):
    """NCSN's annealed Langevin dynamics on the schedule's ``steps`` levels
    (:func:`~dgm.models.diffusion.score_matching.annealed_langevin_dynamics`, ``steps_per_level`` steps of size
    ``epsilon σ_i² / σ_L²`` at each), then the denoising step ``x + σ_L² s(x, σ_L)``."""

    steps: int = 10
    steps_per_level: int = 100
    epsilon: float = 2e-5

    def __post_init__(self):
        super().__post_init__()
        check_integer(self.steps_per_level, "steps_per_level", 1)
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}")

    def path(self, denoiser: Denoiser, schedule: NoiseSchedule, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """The state at the end of each level, then the denoised ``x_0``."""
        times = schedule.times(self.steps)
        levels = schedule.sigma(times)

        def score(y: Tensor, sigma: Tensor) -> Tensor:
            t = times[(levels - sigma[0]).abs().argmin()]  # the level's own time
            return score_from(denoiser(y, t.to(y.dtype)), sigma[0])

        end, states = annealed_langevin_dynamics(score, x, levels.to(x.dtype), self.steps_per_level, self.epsilon,
                                                 denoise=True, record_every=self.steps_per_level)
        yield from zip(times, states[1:])
        yield torch.zeros(()), end


SAMPLERS: dict[str, type[Sampler]] = {"ancestral": Ancestral, "ddim": DDIM, "ode": ProbabilityFlow,
                                      "dpm_solver": DPMSolver, "euler_maruyama": EulerMaruyama,
                                      "predictor_corrector": PredictorCorrector, "annealed_langevin": AnnealedLangevin}


def make_sampler(name: str, **options) -> Sampler:
    """The sampler ``name`` with ``options``, or ``ValueError`` naming the samplers or the sampler's options."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; the samplers are {', '.join(SAMPLERS)}")
    accepted = [field.name for field in dataclasses.fields(SAMPLERS[name])]
    unknown = [option for option in options if option not in accepted]
    if unknown:
        raise ValueError(f"the sampler {name!r} has no option(s) {', '.join(unknown)}; its options are "
                         f"{', '.join(accepted)}")
    return SAMPLERS[name](**options)
