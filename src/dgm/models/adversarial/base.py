"""What every GAN of dgm shares: a generator ``G(z)``, a critic ``D(x)``, one adversarial loss and its tricks.

A GAN model (:class:`GANModel`) holds two networks, ``self.generator`` (called ``generator(z, labels)``) and
``self.critic`` (``critic(x, labels)`` → ``(N,)`` raw outputs), and trains them by the alternating updates of
:class:`dgm.core.AdversarialModel` (Goodfellow et al., 2014, Algorithm 1). Everything else is an option of the
model, the same for every architecture:

- ``loss``: one of :mod:`dgm.models.adversarial.losses` (``"non_saturating"``, ``"minimax"``, ``"least_squares"``,
  ``"wasserstein"``, ``"hinge"``, ``"f-<divergence>"``), with ``label_smoothing`` for the first two;
- penalties on the critic: ``gradient_penalty`` (WGAN-GP's weight λ, Gulrajani et al., 2017, eq. 3) and ``r1``
  (the weight γ of Mescheder et al., 2018, eq. 9);
- ``clip_weights = c``: every critic parameter clamped to ``[−c, c]`` after each critic update (WGAN, Arjovsky et al.,
  2017, Algorithm 1), in the trainer's ``after_update`` hook;
- ``spectral_norm``: every linear and convolutional layer of the critic divided by its spectral norm
  (:mod:`dgm.nn.spectral_norm`; Miyato et al., 2018);
- ``critic_steps`` critic updates per generator update, and the two time-scale rule (``generator_lr``,
  ``critic_lr``; Heusel et al., 2017) with the Adam ``betas`` of both;
- ``n_classes``: class-conditional networks, which receive ``labels`` (the architecture decides how).

An EMA of the generator's weights is the trainer's ``ema_decay`` (every family's), used for sampling and evaluation.

Data convention: continuous data enter the networks as they are. Discrete data (images with ``levels`` values) enter
the critic as ``2 x / (levels − 1) − 1`` in ``[−1, 1]``, the range of the generator's ``tanh`` output, and samples
are that output mapped back and rounded to the nearest level. ``sample(n, truncation=t)`` draws the latent ``z``
from a standard normal truncated to ``[−t, t]`` (each entry outside redrawn: the truncation trick of BigGAN, Brock et
al., 2019, §3.1), trading variety for quality. After :meth:`~GANModel.calibrate_rejection` on real data,
``sample(n, rejection=True)`` keeps each sample with a probability from the critic's density ratio (discriminator
rejection sampling, :mod:`dgm.models.adversarial.rejection`). With ``calibration_steps = k`` the calibration first
trains the critic alone for ``k`` more steps on a standard discriminator's logistic loss, real examples against the
frozen generator's samples, as DRS does before it reads the critic (Azadi et al., 2019): that loss's optimum has
``logit D*(x) = log r(x)`` (Goodfellow et al., 2014, Prop. 1), where a Lipschitz or hinge critic is at best an
ordering of ``r``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from dgm.core import AdversarialModel, Losses, Update, check_integer, check_levels
from dgm.distributions.codec import to_interval, to_levels
from dgm.models.adversarial.losses import (FDivergence, Wasserstein, adversarial_loss, gradient_penalty,
                                           r1_penalty)
from dgm.models.adversarial.rejection import (MIN_CALIBRATION_EXAMPLES, RATIO_BINS, fit_log_ratio, log_ratio_of,
                                              rejection_sample)
from dgm.nn.spectral_norm import normalise_every_layer

CALIBRATION_BATCH = 1000  # examples per critic call while calibrating rejection sampling
FINE_TUNING_BATCH = 512  # real and as many generated examples per step of the critic's fine-tuning
FINE_TUNING_LR, FINE_TUNING_BETAS = 1e-3, (0.5, 0.999)  # its Adam (the PyTorch examples' betas)
TRUNCATION_REDRAWS = 100  # rounds of redrawing latent entries outside [−t, t]; the chance one survives is tiny


def _positive_or_none(value, name: str):
    if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return value


def check_non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_betas(betas) -> tuple[float, float]:
    """Adam's ``(β1, β2)`` as a tuple if both lie in ``[0, 1)``, else ``ValueError``."""
    if not isinstance(betas, list | tuple) or len(betas) != 2 or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1) such as [0.5, 0.999], got {betas!r}")
    return float(betas[0]), float(betas[1])


def check_image_shape(shape, model: str) -> tuple[int, int, int]:
    """``shape`` as a tuple if it is an image's ``(C, H, W)``, else ``ValueError`` naming ``model``."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{model} models images of shape (C, H, W), got shape {tuple(shape)}")
    return tuple(shape)


class GANModel(AdversarialModel):
    """The shared options and training of a GAN (see the module docstring); a subclass builds ``self.generator``
    and ``self.critic`` after calling this constructor, then calls :meth:`finish_critic`."""

    def __init__(self, shape: tuple[int, ...], levels: int | None, latent_dim: int, loss: str,
                 critic_steps: int, gradient_penalty: float, r1: float, clip_weights: float | None,
                 spectral_norm: bool, label_smoothing: float, generator_lr: float | None, critic_lr: float | None,
                 betas: tuple[float, float], n_classes: int | None, calibration_steps: int = 0):
        super().__init__()
        self.shape, self.levels = tuple(shape), check_levels(levels, type(self).__name__, allow_continuous=True)
        self.latent_dim = check_integer(latent_dim, "latent_dim", 1)
        self.objective = adversarial_loss(loss, check_non_negative(label_smoothing, "label_smoothing"))
        self.critic_steps = check_integer(critic_steps, "critic_steps", 1)
        self.gradient_penalty_weight = check_non_negative(gradient_penalty, "gradient_penalty")
        self.r1_weight = check_non_negative(r1, "r1")
        self.clip = _positive_or_none(clip_weights, "clip_weights")
        self.spectral_norm = spectral_norm
        self.generator_lr = _positive_or_none(generator_lr, "generator_lr")
        self.critic_lr = _positive_or_none(critic_lr, "critic_lr")
        self.adam_betas = check_betas(betas)
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 2)
        self.calibration_steps = check_integer(calibration_steps, "calibration_steps", 0)
        self.register_buffer("rejection_edges", torch.zeros(RATIO_BINS - 1, dtype=torch.float64))
        self.register_buffer("rejection_log_ratio", torch.zeros(RATIO_BINS, dtype=torch.float64))
        self.register_buffer("rejection_calibrated", torch.tensor(False))

    def finish_critic(self) -> None:
        """Apply spectral normalisation to every linear and convolutional layer of ``self.critic`` if asked."""
        if self.spectral_norm:
            normalise_every_layer(self.critic)

    def generator_parameters(self):
        return self.generator.parameters()

    def critic_parameters(self):
        return self.critic.parameters()

    # -- between data and networks ------------------------------------------------------------------------------
    def to_network(self, x: Tensor) -> Tensor:
        """Data as the critic reads them: discrete values onto ``[−1, 1]``, continuous ones as they are."""
        return x if self.levels is None else to_interval(x, self.levels)

    def to_data(self, y: Tensor) -> Tensor:
        """The generator's output as data: back from ``[−1, 1]`` and rounded to levels for discrete data."""
        return y if self.levels is None else to_levels(y, self.levels)

    # -- generating ---------------------------------------------------------------------------------------------
    def draw_latents(self, n: int, truncation: float | None = None) -> Tensor:
        """``n`` latent vectors ``z ~ N(0, I)``, truncated to ``[−truncation, truncation]`` where given."""
        z = torch.randn(n, self.latent_dim, device=self.device)
        if truncation is None:
            return z
        _positive_or_none(truncation, "truncation")
        for _ in range(TRUNCATION_REDRAWS):
            outside = z.abs() > truncation
            if not outside.any():
                break
            z[outside] = torch.randn(int(outside.sum()), device=self.device)
        return z.clamp(-truncation, truncation)

    def generate(self, n: int, labels: Tensor | None) -> Tensor:
        """``n`` generator outputs in the critic's space (with gradients)."""
        return self.generator(self.draw_latents(n), labels)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, truncation: float | None = None,
               rejection: bool = False) -> Tensor:
        return self.sample_from(lambda k, given: self.generator(self.draw_latents(k, truncation), given), n, labels,
                                rejection)

    def sample_from(self, generate: Callable[[int, Tensor | None], Tensor], n: int, labels: Tensor | None,
                    rejection: bool) -> Tensor:
        """``n`` samples in data space from ``generate(k, labels)`` (``k`` outputs in the critic's space), each kept
        with probability ``r(x) / M`` where ``rejection`` (the calibrated critic's density ratio; unconditional
        only): every GAN's ``sample`` ends here, whatever options its generator takes."""
        labels = self.labels_of(labels, n)
        if not rejection:
            return self.to_data(generate(n, labels))
        if labels is not None:
            raise ValueError("rejection sampling serves unconditional GANs only")
        if not self.rejection_calibrated:
            raise ValueError("rejection=True needs a calibrated critic: call calibrate_rejection(real data) first")
        edges, log_ratio = self.rejection_edges, self.rejection_log_ratio
        outputs = rejection_sample(lambda k: generate(k, None),
                                   lambda y: log_ratio_of(self.critic(y, None), edges, log_ratio), n,
                                   float(log_ratio.max()))
        return self.to_data(outputs)

    @torch.no_grad()
    def calibrate_rejection(self, real: Tensor) -> dict:
        """Calibrate the critic's density ratio on ``real`` examples (at least ``MIN_CALIBRATION_EXAMPLES``, twice
        as many with ``calibration_steps``) against as many samples of the generator (see
        :mod:`~dgm.models.adversarial.rejection`) for ``sample(n, rejection=True)``; returns the largest log-ratio
        ``log M`` and the acceptance rate ``E_G[r] / M`` it implies. With ``calibration_steps`` the critic is first
        fine-tuned (:meth:`fine_tune_critic`) on the first half of ``real``, its last batch's loss returned too
        (``fine_tuning_loss``; ``log 2 ≈ 0.693`` for a critic that cannot tell real from generated), and the ratio
        binned on the other half. ``fit`` calls it at the end of training (:meth:`after_training`)."""
        if self.n_classes is not None:
            raise ValueError("rejection sampling serves unconditional GANs only")
        fine_tuning = {}
        if self.calibration_steps:
            half = len(real) // 2
            tuning, real = real[:half], real[half:]
            fine_tuning["fine_tuning_loss"] = self.fine_tune_critic(tuning, self.calibration_steps)
        on_real = torch.cat([self.critic(self.to_network(batch.to(self.device)), None) for batch in
                             real.split(CALIBRATION_BATCH)])
        on_fake = torch.cat([self.critic(self.generator(self.draw_latents(len(batch)), None), None) for batch in
                             real.split(CALIBRATION_BATCH)])
        edges, log_ratio = fit_log_ratio(on_real, on_fake)
        self.rejection_edges.copy_(edges)
        self.rejection_log_ratio.copy_(log_ratio)
        self.rejection_calibrated.fill_(True)
        log_bound = float(log_ratio.max())
        return {"log_bound": log_bound, "acceptance": float((log_ratio - log_bound).exp().mean()), **fine_tuning}

    def fine_tune_critic(self, real: Tensor, steps: int) -> float:
        """``steps`` Adam updates of the critic alone on the logistic loss ``−log σ(D(x)) − log(1 − σ(D(G(z))))``,
        ``x`` drawn from ``real``, the generator frozen; returns the last step's loss."""
        check_integer(steps, "steps", 1)
        optimizer = torch.optim.Adam(self.critic_parameters(), lr=FINE_TUNING_LR, betas=FINE_TUNING_BETAS)
        targets = torch.cat([torch.ones(FINE_TUNING_BATCH), torch.zeros(FINE_TUNING_BATCH)]).to(self.device)
        self.critic.train()
        with torch.enable_grad():
            for _ in range(steps):
                x = self.to_network(real[torch.randint(len(real), (FINE_TUNING_BATCH,))].to(self.device))
                with torch.no_grad():
                    fake = self.generator(self.draw_latents(FINE_TUNING_BATCH), None)
                loss = F.binary_cross_entropy_with_logits(self.critic(torch.cat([x, fake]), None), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.critic.eval()
        return float(loss.detach())

    def after_training(self, train: Tensor) -> dict | None:
        """Calibrate rejection sampling on the training examples ``fit`` gives, for an unconditional GAN and at least
        the examples :func:`~dgm.models.adversarial.rejection.fit_log_ratio` needs (otherwise it stays
        uncalibrated); the calibration's figures are returned as ``{"rejection": {"log_bound": …, "acceptance":
        …}}``."""
        if self.n_classes is None and len(train) >= MIN_CALIBRATION_EXAMPLES * (2 if self.calibration_steps else 1):
            return {"rejection": self.calibrate_rejection(train)}
        return None

    # -- the objectives -----------------------------------------------------------------------------------------
    def critic_outputs(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """The critic's outputs on a real and a generated batch of the same size, in one call."""
        both = self.critic(torch.cat([real, fake]), None if labels is None else labels.repeat(2))
        return both.chunk(2)

    def training_step(self, x: Tensor, step: int, labels: Tensor | None = None) -> Iterator[Update]:
        """A critic update, then on every ``critic_steps``-th batch a generator update on the same generated batch:
        one generator pass serves both (the PyTorch examples' DCGAN loop), the critic's loss seeing it detached.
        The generator's loss then reads the critic that the first update changed (Algorithm 1)."""
        x, labels = self.check(x), self.labels_of(labels, len(x))
        updates_generator = (step + 1) % self.critic_steps == 0
        with torch.set_grad_enabled(updates_generator):
            fake = self.generate(len(x), labels)
        yield "critic", self.critic_loss_on(x, fake.detach(), labels)
        if updates_generator:
            yield "generator", {"loss": self.objective.generator(self.critic(fake, labels))}

    def critic_loss(self, x: Tensor, labels: Tensor | None = None) -> Losses:
        labels = self.labels_of(labels, len(x))
        return self.critic_loss_on(x, self.generate(len(x), labels).detach(), labels)

    def critic_loss_on(self, x: Tensor, fake: Tensor, labels: Tensor | None) -> Losses:
        """The critic's loss (with its penalties) on real data ``x`` and generated points ``fake`` (network space,
        detached)."""
        real = self.to_network(x)
        losses = self._critic_terms(*self.critic_outputs(real, fake, labels))
        loss = losses["loss"]
        if self.gradient_penalty_weight:
            losses["gradient_penalty"] = gradient_penalty(lambda points: self.critic(points, labels), real, fake)
            loss = loss + self.gradient_penalty_weight * losses["gradient_penalty"]
        if self.r1_weight:
            losses["r1"] = r1_penalty(lambda points: self.critic(points, labels), real)
            loss = loss + self.r1_weight * losses["r1"]
        return losses | {"loss": loss}

    def _critic_terms(self, on_real: Tensor, on_fake: Tensor) -> Losses:
        """The critic's loss and what to log beside it: its mean outputs, and the estimate of the distance the
        critic measures where the loss has one (WGAN's ``E D(x) − E D(G(z))``, an f-GAN's lower bound on D_f)."""
        losses = {"loss": self.objective.critic(on_real, on_fake),
                  "critic_real": on_real.mean().detach(), "critic_fake": on_fake.mean().detach()}
        if type(self.objective) is Wasserstein:  # not Hinge, its subclass
            losses["wasserstein_estimate"] = (on_real.mean() - on_fake.mean()).detach()
        if isinstance(self.objective, FDivergence):
            losses["divergence_bound"] = self.objective.bound(on_real, on_fake).detach()
        return losses

    def generator_loss(self, x: Tensor, labels: Tensor | None = None) -> Losses:
        labels = self.labels_of(labels, len(x))
        return {"loss": self.objective.generator(self.critic(self.generate(len(x), labels), labels))}

    def loss(self, x: Tensor, labels: Tensor | None = None) -> Losses:
        """Both objectives on a batch, for evaluation (penalties left out: they need input gradients): ``loss`` is
        the generator's."""
        labels = self.labels_of(labels, len(x))
        on_real, on_fake = self.critic_outputs(self.to_network(x), self.generate(len(x), labels), labels)
        critic = self._critic_terms(on_real, on_fake)
        return {"loss": self.objective.generator(on_fake), "critic_loss": critic.pop("loss"), **critic}

    @torch.no_grad()
    def critic_output(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.critic(self.to_network(x), self.labels_of(labels, len(x)))

    def after_update(self, group: str) -> None:
        """WGAN's weight clipping: after each critic update, every critic parameter back into ``[−c, c]``."""
        if group == "critic" and self.clip is not None:
            with torch.no_grad():
                for parameter in self.critic.parameters():
                    parameter.clamp_(-self.clip, self.clip)
