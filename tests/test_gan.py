"""The minimal GAN: its losses, and the trainer's alternation of critic and generator steps."""
import math

import pytest
import torch

import dgm
from dgm.checkpoint import load_state
from dgm.data.base import Data
from dgm.training import fit, seed_everything


def test_losses_match_the_papers_objectives():
    torch.manual_seed(0)
    gan = dgm.create("gan", shape=(2,), hidden=[8])
    for layer in (gan.critic.net[-1],):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    x = torch.randn(16, 2)
    # a discriminator that outputs D = 1/2 everywhere: critic loss 2 log 2, generator loss log 2
    assert gan.critic_loss(x)["loss"].item() == pytest.approx(2 * math.log(2))
    assert gan.generator_loss(x)["loss"].item() == pytest.approx(math.log(2))
    minimax = dgm.create("gan", shape=(2,), hidden=[8], loss="minimax")
    minimax.load_state_dict(gan.state_dict())
    assert minimax.generator_loss(x)["loss"].item() == pytest.approx(-math.log(2))
    both = gan.loss(x)  # the protocol's loss: the generator's objective, with the critic's beside it
    assert both["loss"].item() == pytest.approx(math.log(2)) and both["critic_loss"].item() == pytest.approx(2 * math.log(2))
    assert gan.likelihood is None
    with pytest.raises(NotImplementedError, match="no likelihood"):
        gan.log_prob(x)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="vectors"):
        dgm.create("gan", shape=(1, 8, 8))
    with pytest.raises(ValueError, match="adversarial loss"):
        dgm.create("gan", shape=(2,), loss="hinge-ish")
    with pytest.raises(ValueError, match="critic_steps"):
        dgm.create("gan", shape=(2,), critic_steps=0)


def _ring(n, generator):
    """Eight tight Gaussians on the circle of radius 2."""
    angle = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
    centres = 2 * torch.stack([angle.cos(), angle.sin()], 1)
    return centres + 0.05 * torch.randn(n, 2, generator=generator)


def test_trainer_alternates_critic_and_generator_steps(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = Data("ring", _ring(640, generator), _ring(128, generator))
    seed_everything(0)
    gan = dgm.create("gan", data=data, critic_steps=3, hidden=[16])
    fit(gan, data, tmp_path / "run", max_epochs=2, batch_size=64, lr=1e-3, progress=False)
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    generator_state, critic_state = (s["state"] for s in state["optimizer_states"])
    # 10 batches per epoch, 20 in all: 20 critic updates and one generator update per 3 batches
    assert next(iter(critic_state.values()))["step"].item() == 20
    assert next(iter(generator_state.values()))["step"].item() == 6


def test_gan_learns_the_location_and_spread_of_a_gaussian(tmp_path):
    generator = torch.Generator().manual_seed(1)
    scale, shift = torch.tensor([0.5, 0.2]), torch.tensor([2.0, -1.0])
    data = Data("gaussian", torch.randn(2048, 2, generator=generator) * scale + shift,
                torch.randn(256, 2, generator=generator) * scale + shift)
    seed_everything(0)
    gan = dgm.create("gan", data=data, hidden=[32, 32])
    with torch.no_grad():
        assert (gan.sample(4000).mean(0) - shift).norm() > 1.5  # the untrained generator is far off
    fit(gan, data, tmp_path / "run", max_epochs=40, batch_size=128, lr=1e-3, progress=False)
    with torch.no_grad():
        samples = gan.sample(4000)
    assert torch.allclose(samples.mean(0), shift, atol=0.15)
    ratio = samples.std(0) / scale
    assert ((ratio > 0.6) & (ratio < 1.5)).all(), ratio




def test_a_2d_gan_draws_its_critic_map(tmp_path):
    """Homework 5's picture: the critic's contours under the real and the generated points."""
    from dgm.runs import write_pictures
    generator = torch.Generator().manual_seed(0)
    data = Data("ring", _ring(256, generator), _ring(64, generator))
    gan = dgm.create("gan", data=data, hidden=[8]).eval()
    written = {path.name for path in write_pictures(gan, data, tmp_path)}
    assert "critic.png" in written
    x = data.test[:5]
    torch.testing.assert_close(gan.critic_output(x), gan.critic(x, None))


def test_weight_clipping_keeps_every_critic_parameter_in_range(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = Data("ring", _ring(640, generator), _ring(128, generator))
    seed_everything(0)
    gan = dgm.create("gan", data=data, hidden=[16], loss="wasserstein", clip_weights=0.01, critic_steps=2)
    run = fit(gan, data, tmp_path / "run", max_epochs=1, batch_size=64, lr=1e-2, progress=False)
    values = torch.cat([parameter.flatten() for parameter in run.model.critic.parameters()])
    assert values.abs().max() <= 0.01 + 1e-7
    assert (values.abs() > 0.0099).float().mean() > 0.1  # a large lr drives many weights to the bound


def test_one_sided_label_smoothing_is_the_cross_entropy_with_target_one_minus_alpha():
    from dgm.models.adversarial.losses import adversarial_loss
    real, fake = torch.tensor([1.5, -0.5, 3.0]), torch.tensor([0.2, -2.0])
    smoothed = adversarial_loss("non_saturating", label_smoothing=0.1).critic(real, fake)
    expected = (torch.nn.functional.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9))
                + torch.nn.functional.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(smoothed, expected)
    with pytest.raises(ValueError, match="label_smoothing"):
        adversarial_loss("wasserstein", label_smoothing=0.1)


def test_truncation_draws_latents_from_the_truncated_normal():
    torch.manual_seed(0)
    gan = dgm.create("gan", shape=(2,), latent_dim=4, hidden=[8])
    z = gan.draw_latents(20000, truncation=0.5)
    assert z.abs().max() <= 0.5
    assert abs(z.var().item() - 0.0806) < 0.002  # N(0, 1) truncated to [-t, t]: 1 - 2t phi(t) / (2 Phi(t) - 1)
    with pytest.raises(ValueError, match="truncation"):
        gan.sample(4, truncation=-1.0)


def test_a_gan_step_generates_once_and_updates_the_generator_with_the_critic_it_just_changed():
    torch.manual_seed(0)
    gan = dgm.create("gan", shape=(2,), hidden=[8], critic_steps=1)
    calls = []
    gan.generator.register_forward_hook(lambda module, inputs, output: calls.append(output))
    x = torch.randn(16, 2)
    updates = gan.training_step(x, step=0)
    name, critic_losses = next(updates)
    assert name == "critic" and len(calls) == 1
    critic_losses["loss"].backward()
    with torch.no_grad():  # the critic's update, as the trainer would make it
        for parameter in gan.critic.parameters():
            parameter -= 0.5 * parameter.grad
    name, generator_losses = next(updates)
    assert name == "generator" and len(calls) == 1  # the same generated batch
    expected = torch.nn.functional.softplus(-gan.critic(calls[0], None)).mean()
    torch.testing.assert_close(generator_losses["loss"], expected)


def test_sample_quality_is_logged_per_epoch(tmp_path):
    from dgm.data.base import load
    from dgm.plots import read_metrics_csv
    data = load("8gaussians-hw5")
    data = Data(data.name, data.train[:1024], data.test[:512], distribution=data.distribution)
    seed_everything(0)
    gan = dgm.create("gan", data=data, hidden=[16])
    fit(gan, data, tmp_path / "run", max_epochs=2, batch_size=256, progress=False, quality_every=1,
        quality_metrics=["modes"], quality_samples=500)
    curves = read_metrics_csv(next((tmp_path / "run" / "logs").glob("csv-*/metrics.csv")))
    steps, covered = curves["quality/modes_covered"]
    assert len(covered) == 2 and ((0 <= covered) & (covered <= 8)).all()


def test_sample_pictures_over_training_leave_the_run_unchanged(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = Data("ring", _ring(512, generator), _ring(128, generator))
    weights = {}
    for pictures in (None, 1):
        seed_everything(0)
        gan = dgm.create("gan", data=data, hidden=[8])
        run = fit(gan, data, tmp_path / f"run{pictures}", max_epochs=2, batch_size=128, progress=False,
                  pictures_every=pictures)
        weights[pictures] = torch.cat([p.flatten() for p in run.model.parameters()])
    assert sorted(path.name for path in (tmp_path / "run1").glob("samples_epoch*.png")) == \
        ["samples_epoch0001.png", "samples_epoch0002.png"]
    torch.testing.assert_close(weights[None], weights[1], rtol=0, atol=0)  # its draws are undone


def test_pictures_over_training_keep_their_rhythm_across_a_resume(tmp_path):
    """Every second epoch, counted over the whole run: a run resumed after epoch 1 draws at epoch 2."""
    generator = torch.Generator().manual_seed(0)
    data = Data("ring", _ring(256, generator), _ring(64, generator))
    seed_everything(0)
    gan = dgm.create("gan", data=data, hidden=[8])
    fit(gan, data, tmp_path / "run", max_epochs=1, batch_size=128, progress=False, pictures_every=2)
    assert not list((tmp_path / "run").glob("samples_epoch*.png"))
    fit(gan, data, tmp_path / "run", max_epochs=2, batch_size=128, progress=False, pictures_every=2, resume=True)
    assert [path.name for path in (tmp_path / "run").glob("samples_epoch*.png")] == ["samples_epoch0002.png"]
