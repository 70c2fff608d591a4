"""The diffusion model: a network that denoises ``x_t = α(t) x_0 + σ(t) ε`` on a noise schedule, trained by
denoising score matching, sampled by any sampler of :mod:`dgm.models.diffusion.samplers`, with two likelihoods.

**What the network predicts** (``prediction``): the noise ``ε`` (DDPM, Ho, Jain & Abbeel, 2020, eq. 11), the clean
data ``x_0``, or the velocity ``v = α ε − σ x_0`` (Salimans & Ho, 2022, "Progressive distillation", §4; for the
variance-preserving process only). Each gives the other two through ``x_t = α x̂_0 + σ ε̂``.

**Training** (``loss="simple"``): a step ``t_i`` drawn uniformly from the schedule's ``T`` steps (or, with
``times="continuous"``, a time uniform on ``[ε, 1]``) and
``E‖target − network(x_{t_i}, t_i)‖²`` over the entries, DDPM's ``L_simple`` (eq. 14) for ``ε``. For the ``ε``
prediction it is the ``σ²``-weighted denoising score matching of NCSN (Song & Ermon, 2019, eq. 6): with the score
``s = −ε̂/σ``, ``σ² ‖s + ε/σ‖² = ‖ε̂ − ε‖²``. ``loss="hybrid"`` adds improved DDPM's ``λ L_vlb`` with ``λ = 0.001``
and the mean's gradient stopped in it (Nichol & Dhariwal, 2021, §3.1), to learn the variances.
``loss="likelihood"`` trains for likelihood: the likelihood weighting ``g(t)²`` of the score loss (Song, Durkan,
Murray & Ermon, 2021, "Maximum likelihood training of score-based diffusion models", Theorem 1), which in ``ε`` is
``g²/σ² ‖ε̂ − ε‖²`` with ``g²/σ² = −dλ/dt`` for the log-SNR ``λ = log(α²/σ²)``, drawn with their importance
sampling: times uniform in ``λ`` between ``λ(1)`` and ``λ(ε)``, each weighted ``½ (λ(ε) − λ(1))``. Per example it
is the continuous-time diffusion loss ``L_∞ = ½ ∫ E‖ε − ε̂‖² dλ`` of Kingma, Salimans, Poole & Ho (2021,
"Variational diffusion models"), the part of their bound that the network controls; it weights the small noise
levels, where the probability-flow likelihood is decided, far more than ``L_simple``. It needs continuous times.

**Variances of the reverse steps** (``variance``): the posterior's ``β̃`` or the forward step's ``β`` (DDPM §3.2),
or learned: an extra output ``v`` per entry sets ``log Σ = v log β + (1 − v) log β̃`` (improved DDPM, eq. 15) between
any two times, so that the learned variance serves strided samplers too.

**Likelihoods**, ``log_prob(x, method=…)``:

- ``"vlb"`` (variance-preserving schedules): the variational bound of DDPM (eq. 5) on its ``T`` steps,
  ``log p(x_0) ≥ −L_T − Σ_{i=2}^{T} L_{i−1} − L_0``, with ``L_T = KL(q(x_T | x_0) ‖ N(0, I))``,
  ``L_{i−1} = KL(q(x_{t_{i−1}} | x_{t_i}, x_0) ‖ p(x_{t_{i−1}} | x_{t_i}))`` in closed form for one draw of
  ``x_{t_i}`` each, and ``L_0 = −log p(x_0 | x_{t_1})``: for discrete data the Gaussian of mean ``x̂_0`` and variance
  ``β_1`` discretized to the values' bins (eq. 13), for vectors its density. ``timesteps=k`` estimates the sum over
  the ``T − 1`` middle steps from ``k`` of them, one drawn in each of ``k`` equal strata, each weighted by its
  stratum's size: unbiased, cheaper, noisier. The default ``k = 20`` makes a test-set evaluation of an image
  model 50 times cheaper than the full sum (``k ≥ T − 1``), and its extra spread enters the NLL's standard error:
  for ``ddpm-mnist`` on 1000 test images 1.984 ± 0.042 bits/dim with ``k = 20`` (64 s on one thread), 1.989 ±
  0.019 with ``k = 100`` (209 s).
- ``"ode"``: the probability-flow ODE's exact change of variables (Song et al., 2021, "Score-based generative
  modeling through stochastic differential equations", eq. 39 and appendix D.2): ``log p_ε(x) = log p_1(x_1) +
  ∫_ε^1 ∇·v(x_t, t) dt`` (``ε = 10⁻⁵``, or ``1/T`` for discrete times: ``likelihood_start``) with ``v`` the ODE's
  velocity, the divergence exact (``trace="exact"``) or by Hutchinson's estimator with one draw (``"hutchinson"``,
  unbiased for images). Discrete data are dequantized uniformly in their bins (:mod:`dgm.distributions.codec`,
  bins of width ``2h``): ``log P(x) ≥ E_u[log p(x̃ + h(2u − 1))] + D log 2h``.

Both are lower bounds for discrete data; for vectors ``"ode"`` is the density of the ODE's own model, exact up to the
solver's tolerance, and ``"vlb"`` a bound on the density of the chain's. ``likelihood`` labels the default method:
``"exact"`` for vectors under a schedule without a bound (NCSN), ``"lower_bound"`` otherwise.

**Classes**: with ``n_classes`` the network reads a label; during training it is replaced by the null label with
probability ``label_dropout``, so that one network learns both ``ε(x, y)`` and ``ε(x)``, and sampling with
``guidance = w`` uses ``(1 + w) ε(x, y) − w ε(x)`` (classifier-free guidance, Ho & Salimans, 2022, eq. 6).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from dgm.core import GenerativeModel, Losses, check_integer, check_levels
from dgm.distributions.codec import half_bin_width, to_interval, to_levels
from dgm.distributions.functional import normal_kl, normal_log_density
from dgm.distributions.likelihoods import discretized_normal_log_prob, sum_per_example
from dgm.flows.continuous import draw_noise, exact_trace, hutchinson_trace
from dgm.models.diffusion.samplers import (VARIANCES, Denoiser, Prediction, Sampler, make_sampler, posterior_mean,
                                           probability_flow_velocity, reverse_log_variance, score_from,
                                           solver_options)
from dgm.models.diffusion.schedules import NoiseSchedule, VariancePreserving, broadcast

PREDICTIONS = ("epsilon", "x0", "v")
LOSSES = ("simple", "hybrid", "likelihood")
METHODS = ("vlb", "ode")
TIME_SAMPLINGS = ("discrete", "continuous")
TRACES = ("exact", "hutchinson")
TIME_SCALE = 1000  # the network reads 1000 t, DDPM's step index, so that its sinusoidal features vary with t
HYBRID_WEIGHT = 0.001  # improved DDPM's λ
LIKELIHOOD_START = 1e-5  # the ODE likelihood's ε (Song et al., appendix D.2)
LIKELIHOOD_STEPS = 1000  # steps of a fixed-step solver of the likelihood's ODE
BOUND_TIMESTEPS = 20  # middle steps of the variational bound evaluated by default (a stratified draw)


def choose(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class DiffusionModel(GenerativeModel):
    """A denoising network on a schedule (module docstring). Subclasses build ``schedule`` and ``network``
    (``network(x_t, 1000 t, labels) → (N, k·C, …)``, ``k = 2`` with learned variances) and pass the rest here."""

    @property
    def default_likelihood_method(self) -> str:
        """``log_prob``'s default ``method``: ``"vlb"`` where the schedule has a variational bound (variance
        preserving), ``"ode"`` otherwise."""
        return "vlb" if isinstance(self.schedule, VariancePreserving) else "ode"

    @property
    def likelihood(self) -> str:
        """What ``log_prob(x)`` gives by default: the exact density of the probability-flow ODE's model for vectors
        of a schedule without a variational bound (NCSN's variance-exploding ladder), a lower bound otherwise (the
        VLB, or the ODE on dequantized discrete data)."""
        ode_on_vectors = self.levels is None and self.default_likelihood_method == "ode"
        return "exact" if ode_on_vectors else "lower_bound"

    def __init__(self, shape: tuple[int, ...], levels: int | None, schedule: NoiseSchedule, prediction: str,
                 loss: str, variance: str, times: str, n_classes: int | None, label_dropout: float, sampler: str,
                 sampler_options: dict | None):
        super().__init__()
        self.shape, self.levels = tuple(shape), check_levels(levels, "a diffusion model", allow_continuous=True)
        self.schedule = schedule
        choose(prediction, PREDICTIONS, "prediction")
        choose(loss, LOSSES, "loss")
        choose(variance, VARIANCES, "variance")
        choose(times, TIME_SAMPLINGS, "times")
        if times == "continuous" and loss == "hybrid":
            raise ValueError("the hybrid loss's bound is a sum over the discrete steps: use times='discrete'")
        if times == "discrete" and loss == "likelihood":
            raise ValueError("the likelihood weighting draws continuous times, uniform in log-SNR on [ε, 1]: use "
                             "times='continuous'")
        if prediction == "v" and not isinstance(schedule, VariancePreserving):
            raise ValueError("v-prediction needs a variance-preserving schedule (α² + σ² = 1)")
        if (loss == "hybrid") != (variance == "learned"):
            raise ValueError("the hybrid loss learns the variances: use loss='hybrid' with variance='learned' "
                             "(and the simple loss with fixed variances)")
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must lie in [0, 1), got {label_dropout}")
        self.prediction, self.objective, self.variance, self.time_sampling = prediction, loss, variance, times
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 2)
        self.label_dropout = label_dropout if n_classes is not None else 0.0
        make_sampler(sampler, **(sampler_options or {}))  # refuses an unknown sampler or option now
        self.sampler_name, self.sampler_options = sampler, dict(sampler_options or {})
        self.network: nn.Module

    @property
    def output_factor(self) -> int:
        """How many values the network outputs per entry of the data: 2 with learned variances, else 1."""
        return 2 if self.variance == "learned" else 1

    # -- data on the network's scale --------------------------------------------------------------------------
    def to_network(self, x: Tensor) -> Tensor:
        """Data as the process diffuses it: images on ``[-1, 1]`` (:func:`to_interval`), vectors as they are."""
        return x if self.levels is None else to_interval(x, self.levels)

    def to_data(self, y: Tensor) -> Tensor:
        return y if self.levels is None else to_levels(y, self.levels)

    # -- the network's predictions ----------------------------------------------------------------------------
    def network_output(self, x_t: Tensor, t: Tensor, labels: Tensor | None, guidance: float = 0.0) -> Tensor:
        """The network on ``x_t`` at times ``t`` ``(N,)``; with ``guidance = w``, ``(1 + w)`` times its output for
        ``labels`` minus ``w`` times its unconditional output (both in one batch)."""
        if not guidance:
            return self.network(x_t, TIME_SCALE * t, labels)
        null = torch.full_like(labels, self.n_classes)
        both = self.network(torch.cat([x_t, x_t]), TIME_SCALE * t.repeat(2), torch.cat([labels, null]))
        conditional, unconditional = both.chunk(2)
        return (1 + guidance) * conditional - guidance * unconditional

    def interpret(self, output: Tensor, x_t: Tensor, t: Tensor) -> Prediction:
        """``ε̂``, ``x̂_0`` and the learned variances' ``v`` from the network's ``output`` on ``x_t`` at ``t``; an
        image's ``x̂_0`` is clipped to ``[−1, 1]`` (DDPM's sampler does) and ``ε̂`` made consistent with it."""
        raw, interpolation = output.chunk(2, dim=1) if self.variance == "learned" else (output, None)
        alpha, sigma = broadcast(self.schedule.alpha(t), x_t), broadcast(self.schedule.sigma(t), x_t)
        if self.prediction == "epsilon":
            epsilon, x0 = raw, (x_t - sigma * raw) / alpha
        elif self.prediction == "x0":
            epsilon, x0 = (x_t - alpha * raw) / sigma, raw
        else:
            epsilon, x0 = sigma * x_t + alpha * raw, alpha * x_t - sigma * raw
        if self.levels is not None:
            clipped = x0.clamp(-1, 1)
            epsilon, x0 = torch.where(clipped == x0, epsilon, (x_t - alpha * clipped) / sigma), clipped
        return Prediction(epsilon, x0, interpolation)

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network is trained to output: ``ε``, ``x_0`` or ``v = α ε − σ x_0``."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "x0":
            return x0
        return broadcast(self.schedule.alpha(t), x0) * noise - broadcast(self.schedule.sigma(t), x0) * x0

    def denoiser(self, labels: Tensor | None = None, guidance: float = 0.0) -> Denoiser:
        """The samplers' view of the network: ``(x_t, t) → Prediction`` at one time ``t`` for the whole batch."""
        def denoise(x_t: Tensor, t: Tensor) -> Prediction:
            times = t.to(x_t.dtype).expand(len(x_t))
            return self.interpret(self.network_output(x_t, times, labels, guidance), x_t, times)
        return denoise

    # -- training -----------------------------------------------------------------------------------------------
    def draw_times(self, n: int) -> Tensor:
        """One time per example: a discrete ``t_i = i/T``, ``i`` uniform on ``1 … T`` (DDPM), or uniform on
        ``[ε, 1]`` (``times="continuous"``, Song et al. 2021), which also trains the network below the first step,
        where the probability-flow likelihood starts; for the likelihood weighting, uniform in log-SNR on
        ``[ε, 1]``."""
        if self.objective == "likelihood":
            lowest, highest = self.log_snr_range()
            log_snr = lowest + (highest - lowest) * torch.rand(n, dtype=torch.float64, device=self.device)
            return self.schedule.time_of_log_snr(log_snr, LIKELIHOOD_START).to(self.dtype)
        if self.time_sampling == "continuous":
            return LIKELIHOOD_START + (1 - LIKELIHOOD_START) * torch.rand(n, dtype=self.dtype, device=self.device)
        steps = torch.randint(1, self.schedule.steps + 1, (n,), device=self.device)
        return steps.to(self.dtype) / self.schedule.steps

    def training_labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        """The checked labels, each replaced by the null label ``n_classes`` with probability ``label_dropout``
        (classifier-free guidance)."""
        labels = self.labels_of(labels, n)
        if labels is None or not self.label_dropout:
            return labels
        dropped = torch.rand(n, device=labels.device) < self.label_dropout
        return torch.where(dropped, torch.full_like(labels, self.n_classes), labels)

    def loss(self, x: Tensor, labels: Tensor | None = None) -> Losses:
        x0 = self.to_network(x)
        labels = self.training_labels(labels, len(x))
        t, noise = self.draw_times(len(x)), torch.randn_like(x0)
        x_t = self.schedule.diffuse(x0, t, noise)
        output = self.network(x_t, TIME_SCALE * t, labels)
        raw = output.chunk(2, dim=1)[0] if self.variance == "learned" else output
        squared_error = (raw - self.target(x0, noise, t)).pow(2)
        simple = squared_error.mean()
        if self.objective == "simple":
            return {"loss": simple, "mse": simple}
        if self.objective == "likelihood":
            diffusion = self.diffusion_loss(squared_error, t).mean() / x[0].numel()
            return {"loss": diffusion, "mse": simple, "diffusion_loss_per_dim": diffusion}
        mean_stopped = torch.cat([raw.detach(), output.chunk(2, dim=1)[1]], dim=1)
        vlb = self.schedule.steps * self.bound_terms(x, x0, x_t, t, mean_stopped).mean() / x[0].numel()
        return {"loss": simple + HYBRID_WEIGHT * vlb, "mse": simple, "vlb_per_dim": vlb}

    def log_snr_range(self) -> tuple[float, float]:
        """``λ(1)`` and ``λ(ε)``, the log-SNR at the ends of the continuous times."""
        ends = self.schedule.log_snr(torch.tensor([1.0, LIKELIHOOD_START], dtype=torch.float64))
        return float(ends[0]), float(ends[1])

    def diffusion_loss(self, squared_error: Tensor, t: Tensor) -> Tensor:
        """``½ (λ(ε) − λ(1)) ‖ε̂ − ε‖²`` per example ``(N,)`` from the squared error of the network's own target at
        times uniform in log-SNR: ``‖ε̂ − ε‖²`` is that error times 1 (``ε``), ``α²/σ²`` (``x_0``) or ``α²`` (``v``,
        since ``ε = σ x_t + α v``)."""
        lowest, highest = self.log_snr_range()
        weight = 0.5 * (highest - lowest)
        if self.prediction == "x0":
            weight = weight * (self.schedule.alpha(t) / self.schedule.sigma(t)) ** 2
        elif self.prediction == "v":
            weight = weight * self.schedule.alpha(t) ** 2
        return weight * sum_per_example(squared_error)

    # -- the variational bound ----------------------------------------------------------------------------------
    def bound_terms(self, x: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, output: Tensor) -> Tensor:
        """Each example's term of the bound at its discrete time ``t_i`` ``(N,)``, from the network's ``output``
        on ``x_t``: ``L_{i−1}``, a KL in nats, for ``i ≥ 2`` and ``L_0 = −log p(x | x_{t_1})`` for ``i = 1``."""
        s = ((t * self.schedule.steps).round() - 1).clamp(min=0) / self.schedule.steps
        prediction = self.interpret(output, x_t, t)
        log_variance = reverse_log_variance(self.schedule, t.double(), s.double(), self.variance,
                                            prediction.interpolation)
        log_scale = 0.5 * broadcast(log_variance, x_t).to(x_t.dtype)
        true_log_variance = reverse_log_variance(self.schedule, t.double(), s.double(), "posterior")  # finite
        kl = normal_kl(posterior_mean(self.schedule, t.double(), s.double(), x_t, x0),
                       0.5 * broadcast(true_log_variance, x_t).to(x_t.dtype),
                       posterior_mean(self.schedule, t.double(), s.double(), x_t, prediction.x0), log_scale)
        first = s == 0
        decoder = -self.decoder_log_prob(x, prediction.x0, log_scale)
        return torch.where(first, decoder, sum_per_example(torch.where(broadcast(first, kl), 0.0, kl)))

    def decoder_log_prob(self, x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
        """``log p(x | x_{t_1})``: the Gaussian ``N(mean, e^{2 log_scale})`` discretized to the values' bins for
        discrete data (DDPM eq. 13), its density for vectors, ``(N,)``."""
        if self.levels is None:
            return sum_per_example(normal_log_density(x, mean, log_scale))
        return sum_per_example(discretized_normal_log_prob(x, mean, log_scale, self.levels))

    def prior_term(self, x0: Tensor) -> Tensor:
        """``L_T = KL(q(x_1 | x_0) ‖ N(0, σ(1)² I))`` ``(N,)``."""
        one = torch.ones(len(x0), dtype=x0.dtype, device=x0.device)
        alpha, sigma = broadcast(self.schedule.alpha(one), x0), broadcast(self.schedule.sigma(one), x0)
        return sum_per_example(normal_kl(alpha * x0, sigma.log().expand_as(x0), 0.0, sigma.log()))

    def variational_bound(self, x: Tensor, labels: Tensor | None, timesteps: int) -> Tensor:
        """``−L`` of the module docstring, ``(N,)``, with a stratified draw of ``timesteps`` of the middle steps
        (all of them when ``timesteps ≥ T − 1``), drawn for each example on its own, so that the examples' estimates
        are independent and their spread includes the draw's."""
        if not isinstance(self.schedule, VariancePreserving):
            raise ValueError("the variational bound is computed for variance-preserving schedules (DDPM); use "
                             "method='ode' for this model's likelihood")
        x0, steps = self.to_network(x), self.schedule.steps
        check_integer(timesteps, "timesteps", 1)
        strata = torch.linspace(2, steps + 1, min(timesteps, steps - 1) + 1).round().long()
        widths = strata.diff().to(self.device)
        chosen = strata[:-1, None].to(self.device) + (torch.rand(len(widths), len(x), device=self.device)
                                                      * widths[:, None]).long()
        total = -self.prior_term(x0) - self.term_at(x, x0, labels, torch.ones(len(x), device=self.device))
        for stratum_steps, width in zip(chosen, widths):
            total = total - width * self.term_at(x, x0, labels, stratum_steps)
        return total

    def term_at(self, x: Tensor, x0: Tensor, labels: Tensor | None, steps: Tensor) -> Tensor:
        """The bound's term of each example at its discrete step ``steps`` ``(N,)``, with one draw of its
        ``x_{t_step}``."""
        t = steps.to(self.dtype) / self.schedule.steps
        x_t = self.schedule.diffuse(x0, t, torch.randn_like(x0))
        return self.bound_terms(x, x0, x_t, t, self.network(x_t, TIME_SCALE * t, labels))

    # -- the probability-flow likelihood ------------------------------------------------------------------------
    def flow_log_density(self, y: Tensor, labels: Tensor | None, trace: str, solver: str, atol: float,
                         rtol: float) -> Tensor:
        """``log p_ε(y)`` of continuous points ``y`` by the probability-flow ODE from ``t = ε`` to ``1`` with the
        divergence integrated alongside (module docstring), ``(N,)``."""
        denoise = self.denoiser(labels)
        noise = draw_noise(y, "gaussian") if trace == "hutchinson" else None

        def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            with torch.enable_grad():
                x = state[0].detach().requires_grad_(True)
                velocity = probability_flow_velocity(denoise, self.schedule, t, x)
                divergence = exact_trace(velocity, x, False) if noise is None \
                    else hutchinson_trace(velocity, x, noise, False)
            return velocity.detach(), divergence.detach()

        times = torch.tensor([self.likelihood_start, 1.0], dtype=y.dtype, device=y.device)
        ends, integrals = odeint(dynamics, (y, y.new_zeros(len(y))), times, method=solver, atol=atol, rtol=rtol,
                                 options=solver_options(solver, times, LIKELIHOOD_STEPS))
        one = times[-1:].expand(len(y))
        prior_scale = broadcast(self.schedule.sigma(one), y)
        prior = sum_per_example(normal_log_density(ends[-1], torch.zeros_like(y), prior_scale.log().expand_as(y)))
        return prior + integrals[-1]

    @property
    def likelihood_start(self) -> float:
        """The ``ε`` where the probability-flow likelihood starts: Song et al.'s ``10⁻⁵`` for a network trained at
        continuous times, the first step ``1/T`` for one trained at DDPM's discrete times only, whose output below
        it is extrapolation (a dequantized MNIST model: 2.72 bits/dim from ``10⁻⁵``, 2.08 from ``1/T``; 8 test
        images). Any ``ε`` gives a density, so the dequantized bound holds at each."""
        return LIKELIHOOD_START if self.time_sampling == "continuous" else 1 / self.schedule.steps

    def dequantized(self, x: Tensor) -> Tensor:
        """Discrete ``x`` moved uniformly within its bins on ``[-1, 1]``: ``x̃ + h (2u − 1)``."""
        return to_interval(x, self.levels) + half_bin_width(self.levels) * (2 * torch.rand_like(x) - 1)

    # -- the protocol -------------------------------------------------------------------------------------------
    def log_prob(self, x: Tensor, labels: Tensor | None = None, method: str | None = None,
                 timesteps: int = BOUND_TIMESTEPS,
                 trace: str | None = None, solver: str = "dopri5", atol: float = 1e-5, rtol: float = 1e-5) -> Tensor:
        """``log p(x)`` by the variational bound or the probability-flow ODE (module docstring; see ``likelihood``),
        ``(N,)`` nats; the default ``method`` is ``"vlb"`` for variance-preserving schedules and ``"ode"`` otherwise.
        ``timesteps`` serves ``"vlb"``; ``trace`` (exact for vectors, Hutchinson for images by default),
        ``solver``, ``atol``, ``rtol`` serve ``"ode"``."""
        method = choose(method or self.default_likelihood_method, METHODS, "method")
        labels = self.labels_of(labels, len(x))
        if method == "vlb":
            return self.variational_bound(x, labels, timesteps)
        trace = choose(trace or ("exact" if len(self.shape) == 1 else "hutchinson"), TRACES, "trace")
        if trace == "exact" and len(self.shape) != 1:
            raise ValueError("the exact divergence is for vectors (one vector-Jacobian product per dimension); "
                             "images take trace='hutchinson'")
        if self.levels is None:
            return self.flow_log_density(x, labels, trace, solver, atol, rtol)
        log_bin_width = x[0].numel() * math.log(2 * half_bin_width(self.levels))
        return self.flow_log_density(self.dequantized(x), labels, trace, solver, atol, rtol) + log_bin_width

    def chosen_sampler(self, sampler: str | None, options: dict) -> Sampler:
        """The sampler ``sampler`` with ``options``; the model's own (and its options) where ``sampler`` is None."""
        defaults = self.sampler_options if sampler is None else {}
        return make_sampler(sampler or self.sampler_name, **{**defaults, **options})

    def prior_draw(self, n: int) -> Tensor:
        """``x_1 ~ N(0, σ(1)² I)``, ``n`` of them."""
        one = torch.ones(1, dtype=self.dtype, device=self.device)
        return self.schedule.sigma(one) * torch.randn(n, *self.shape, dtype=self.dtype, device=self.device)

    def noised(self, x: Tensor, t: float) -> Tensor:
        """``x_t = α(t) x_0 + σ(t) ε`` of data ``x`` at time ``t``, on the network's scale."""
        times = torch.full((len(x),), float(t), dtype=self.dtype, device=self.device)
        x0 = self.to_network(x)
        return self.schedule.diffuse(x0, times, torch.randn_like(x0))

    @torch.no_grad()
    def reverse_path(self, n: int, labels: Tensor | None = None, guidance: float = 0.0, sampler: str | None = None,
                     **options) -> list[tuple[float, Tensor]]:
        """The walk of ``sampler`` (as :meth:`sample` chooses it) from ``x_1`` to ``x_0`` for ``n`` draws: pairs
        ``(t, x_t)`` on the network's scale (images on ``[-1, 1]``), starting at ``t = 1``."""
        labels = self.labels_of(labels, n)
        start = self.prior_draw(n)
        walk = self.chosen_sampler(sampler, options).path(self.denoiser(labels, guidance), self.schedule, start)
        return [(1.0, start)] + [(float(t), x) for t, x in walk]

    @torch.no_grad()
    def score(self, x: Tensor, t: float, labels: Tensor | None = None) -> Tensor:
        """The model's score ``∇ log p_t(x) ≈ −ε̂(x, t)/σ(t)`` at points ``x`` on the network's scale at time ``t``."""
        times = torch.full((len(x),), t, dtype=self.dtype, device=self.device)
        prediction = self.interpret(self.network_output(x, times, self.labels_of(labels, len(x))), x, times)
        return score_from(prediction, self.schedule.sigma(times[:1]))

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, guidance: float = 0.0, sampler: str | None = None,
               **options) -> Tensor:
        """``n`` samples by ``sampler`` (the model's default, ``dgm sample --sample-arg sampler=ddim``) with its
        ``options`` (``steps=20``, ``eta=…``, see :mod:`dgm.models.diffusion.samplers`); ``guidance`` is the
        classifier-free guidance weight ``w`` of a class-conditional model."""
        labels = self.labels_of(labels, n)
        if guidance and labels is None:
            raise ValueError("guidance needs a class-conditional model and labels=")
        chosen = self.chosen_sampler(sampler, options)
        return self.to_data(chosen(self.denoiser(labels, guidance), self.schedule, self.prior_draw(n)))
