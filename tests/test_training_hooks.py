"""The trainer's hooks: models declare their optimizer groups, the updates of a batch and what follows an update.

A WGAN with weight clipping, a KL warm-up schedule, the two time-scale rule and a class-conditional GAN train through
the same trainer, with no branch for any of them.
"""
import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

import dgm
from dgm.checkpoint import load_state
from dgm.core import AdversarialModel, GenerativeModel, OptimizerGroup
from dgm.data.base import Data
from dgm.registry import MODELS, register_model
from dgm.training import fit, seed_everything


class ClippedWGAN(AdversarialModel):
    """WGAN (Arjovsky et al., 2017, Algorithm 1): a linear critic whose weights are clipped to ±``clip`` after each
    of its updates, a shift generator ``G(z) = z + b``."""

    def __init__(self, shape: tuple[int, ...], clip: float = 0.01, critic_steps: int = 5):
        super().__init__()
        self.clip, self.critic_steps = clip, critic_steps
        self.shift = nn.Parameter(torch.zeros(shape))
        self.critic = nn.Linear(shape[0], 1)
        self.clipped_updates = 0

    def generator_parameters(self):
        return [self.shift]

    def critic_parameters(self):
        return self.critic.parameters()

    def sample(self, n):
        return torch.randn(n, *self.shift.shape) + self.shift

    def critic_loss(self, x):
        fake = self.sample(len(x)).detach()
        return {"loss": self.critic(fake).mean() - self.critic(x).mean()}

    def generator_loss(self, x):
        return {"loss": -self.critic(torch.randn_like(x) + self.shift).mean()}

    def after_update(self, group):
        if group == "critic":
            for parameter in self.critic.parameters():
                parameter.data.clamp_(-self.clip, self.clip)
            self.clipped_updates += 1


class WarmedUpGaussian(GenerativeModel):
    """A Gaussian whose objective weighs its log-variance term by a warm-up weight ``β_t = min(1, t/warmup)`` (the
    shape of a VAE's KL warm-up); it records the weight of every batch it trains on."""

    def __init__(self, shape: tuple[int, ...], warmup: int = 20):
        super().__init__()
        self.warmup = warmup
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))
        self.weights_seen: list[tuple[int, float]] = []

    def loss(self, x, beta: float = 1.0):
        z = (x - self.mean) * torch.exp(-self.log_std)
        return {"loss": (0.5 * z ** 2 + beta * self.log_std).sum(1).mean(), "beta": torch.tensor(beta)}

    def training_step(self, x, step, **condition):
        beta = min(1.0, step / self.warmup)
        self.weights_seen.append((step, beta))
        yield "model", self.loss(x, beta)

    def sample(self, n):
        return self.mean + torch.exp(self.log_std) * torch.randn(n, *self.mean.shape)


for name, cls in [("test-clipped-wgan", ClippedWGAN), ("test-warmed-up-gaussian", WarmedUpGaussian)]:
    if name not in MODELS:
        register_model(name, "a model of the trainer-hook tests")(cls)


def _blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes: class 0 around (−2, 0), class 1 around (2, 1), spread 0.3."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])[labels]
    return centres + 0.3 * torch.randn(n, 2, generator=generator), labels


@pytest.fixture
def labelled_blobs():
    generator = torch.Generator().manual_seed(0)
    (train, train_labels), (test, test_labels) = _blobs(2048, generator), _blobs(256, generator)
    return Data("blobs", train, test, train_labels=train_labels.float(), test_labels=test_labels.float())


def test_wgan_clips_its_critic_after_every_critic_update(tmp_path, gaussian_data):
    seed_everything(0)
    model = dgm.create("test-clipped-wgan", data=gaussian_data, clip=0.01, critic_steps=5)
    run = fit(model, gaussian_data, tmp_path / "run", max_epochs=2, batch_size=64, lr=1e-2, progress=False)
    assert run.model.clipped_updates == 16                    # 8 batches per epoch, one critic update each
    weights = torch.cat([p.detach().flatten() for p in run.model.critic.parameters()])
    assert weights.abs().max().item() == pytest.approx(0.01)   # clipped, and the clipping was active
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    generator_state, critic_state = (s["state"] for s in state["optimizer_states"])
    assert next(iter(critic_state.values()))["step"].item() == 16
    assert next(iter(generator_state.values()))["step"].item() == 3  # after batches 5, 10 and 15


def test_the_step_reaches_the_objective_and_a_warm_up_resumes_on_schedule(tmp_path, gaussian_data):
    seed_everything(0)
    first = dgm.create("test-warmed-up-gaussian", data=gaussian_data, warmup=20)
    fit(first, gaussian_data, tmp_path / "run", max_steps=13, batch_size=64, progress=False)
    resumed = dgm.load(tmp_path / "run")
    fit(resumed, gaussian_data, tmp_path / "run", max_steps=30, batch_size=64, progress=False, resume=True)
    seen = first.weights_seen + resumed.weights_seen
    assert seen == [(step, min(1.0, step / 20)) for step in range(30)]


def test_two_time_scales_each_group_keeps_its_own_rate_and_schedule(tmp_path, gaussian_data):
    seed_everything(0)
    gan = dgm.create("gan", data=gaussian_data, hidden=[8], generator_lr=1e-4, critic_lr=4e-4)
    assert [(g.name, g.lr, g.betas) for g in gan.optimizer_groups()] == [("generator", 1e-4, (0.5, 0.999)),
                                                                         ("critic", 4e-4, (0.5, 0.999))]
    fit(gan, gaussian_data, tmp_path / "run", max_epochs=1, batch_size=64, lr=1.0, progress=False)
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert [s["param_groups"][0]["lr"] for s in state["optimizer_states"]] == [1e-4, 4e-4]
    with pytest.raises(ValueError, match="schedule"):
        OptimizerGroup("critic", [], schedule="linear")
    with pytest.raises(ValueError, match="positive"):
        OptimizerGroup("critic", [], lr=0.0)


class LearningRates(Callback):
    """Records every optimizer's learning rate at the start of each training batch."""

    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rates.append([optimizer.param_groups[0]["lr"] for optimizer in trainer.optimizers])


def test_cosine_schedule_is_a_half_cosine_over_the_run(tmp_path, gaussian_data):
    seed_everything(0)
    recorder = LearningRates()
    fit(dgm.create("test-gaussian", data=gaussian_data), gaussian_data, tmp_path / "run", max_epochs=2,
        batch_size=64, lr=0.05, lr_schedule="cosine", progress=False, callbacks=[recorder])
    expected = [[0.05 * 0.5 * (1 + math.cos(math.pi * b / 16))] for b in range(16)]
    torch.testing.assert_close(torch.tensor(recorder.rates, dtype=torch.float64), torch.tensor(expected), rtol=1e-6,
                               atol=0, check_dtype=False)
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_cosine_schedule_counts_a_gans_optimizer_steps(tmp_path, gaussian_data):
    """``max_steps`` counts optimizer steps: 24 = 16 critic + 8 generator updates with critic_steps=2."""
    seed_everything(0)
    recorder = LearningRates()
    gan = dgm.create("gan", data=gaussian_data, critic_steps=2, hidden=[8])
    fit(gan, gaussian_data, tmp_path / "run", max_steps=24, batch_size=64, lr=1e-3, lr_schedule="cosine",
        progress=False, callbacks=[recorder])
    assert len(recorder.rates) == 16
    steps_before = [b + b // 2 for b in range(16)]   # optimizer steps taken before batch b
    expected = [[1e-3 * 0.5 * (1 + math.cos(math.pi * s / 24))] * 2 for s in steps_before]
    torch.testing.assert_close(torch.tensor(recorder.rates, dtype=torch.float64), torch.tensor(expected), rtol=1e-6,
                               atol=0, check_dtype=False)
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert [s["param_groups"][0]["lr"] for s in state["optimizer_states"]] == pytest.approx([0.0, 0.0], abs=1e-12)


def test_class_conditional_gan_trains_and_validates_with_labels(tmp_path, labelled_blobs):
    seed_everything(0)
    gan = dgm.create("gan", data=labelled_blobs, n_classes=2, hidden=[32, 32])
    run = fit(gan, labelled_blobs, tmp_path / "run", max_epochs=30, batch_size=128, lr=2e-3, progress=False)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    with torch.no_grad():
        for label in (0, 1):
            samples = run.model.sample(2000, labels=torch.full((2000,), label))
            nearest = torch.cdist(samples, centres).argmin(1)
            assert (nearest == label).float().mean() > 0.99, label     # each class lands on its own blob
            assert (samples.mean(0) - centres[label]).norm() < 0.6, (label, samples.mean(0))
    with pytest.raises(ValueError, match="class-conditional"):
        run.model.sample(4)
    with pytest.raises(ValueError, match="not class-conditional"):
        dgm.create("gan", shape=(2,)).sample(4, labels=torch.zeros(4))
