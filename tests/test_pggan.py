"""Progressive GAN (Karras et al., 2018): the growth schedule, the fades of generator, critic and real images at
their ends, the three layers of §3, §4.1 and §4.2, the drift term, and growth through training, saving and resume."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import dgm
from dgm.data.base import Data
from dgm.models.adversarial.losses import Wasserstein
from dgm.models.adversarial.pggan import GrowthSchedule, growth_resolutions
from dgm.nn.progressive import MinibatchStddev, PixelNorm, equalized
from dgm.training import fit, seed_everything

FADE, STABLE = 4, 6  # stage 0: steps 0-5; stage 1 fades in over 6-9, is stable over 10-15; stage 2 from step 16


def small(**options) -> dgm.GenerativeModel:
    """A PGGAN for 16x16 images with 4 levels: stages of 4x4, 8x8 and 16x16."""
    torch.manual_seed(0)
    return dgm.create("pggan", shape=(1, 16, 16), levels=4, latent_dim=8, width=4, fade_steps=FADE,
                      stable_steps=STABLE, **options)


def images(n: int = 8, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 4, (n, 1, size, size), generator=torch.Generator().manual_seed(1)).float()


def test_resolutions_halve_the_image_while_even_and_at_least_four():
    assert growth_resolutions(28, 28) == [(7, 7), (14, 14), (28, 28)]
    assert growth_resolutions(32, 32) == [(4, 4), (8, 8), (16, 16), (32, 32)]
    assert growth_resolutions(4, 4) == [(4, 4)]
    assert growth_resolutions(30, 28) == [(15, 14), (30, 28)]


@pytest.mark.parametrize("step, stage, alpha", [
    (0, 0, 1.0),  # the first stage, stable
    (STABLE - 1, 0, 1.0),  # the end of its stable phase
    (STABLE, 1, 0.0),  # the start of the first fade: the new block has no weight yet
    (STABLE + FADE // 2, 1, 0.5),  # the middle of the fade
    (STABLE + FADE, 1, 1.0),  # the fade done: stage 1 stable
    (2 * STABLE + FADE - 1, 1, 1.0),
    (2 * STABLE + FADE, 2, 0.0),  # the last stage fades in
    (2 * STABLE + 2 * FADE, 2, 1.0),  # and then stays
    (10**9, 2, 1.0)])
def test_the_schedule_at_its_boundaries(step, stage, alpha):
    assert GrowthSchedule(3, FADE, STABLE).at(step) == (stage, alpha)
    model = small()
    model.reach(step)
    assert model.growth() == (stage, alpha) and model.reached_step == step


def test_the_generator_fades_from_the_upsampled_previous_stage_to_the_new_block():
    model, z = small(), torch.randn(5, 8)
    generator = model.generator
    model.reach(STABLE - 1)
    previous = generator(z)
    model.reach(STABLE)  # α = 0
    assert torch.equal(generator(z), F.interpolate(previous, scale_factor=2, mode="nearest"))
    model.reach(STABLE + FADE)  # α = 1: the new block alone
    h = generator.blocks[0](generator.latent(z, None))
    new = generator.to_image[1](generator.blocks[1](h))
    assert generator(z).shape == (5, 1, 8, 8) and torch.equal(generator(z), new)
    model.reach(STABLE + FADE // 2)  # α = 1/2: the mean of the two
    torch.testing.assert_close(generator(z), (F.interpolate(previous, scale_factor=2) + new) / 2)


def test_the_critic_fades_from_the_previous_stage_on_downsampled_input_to_the_new_block():
    model, x = small(), torch.randn(6, 1, 8, 8)
    critic = model.critic
    model.reach(STABLE - 1)
    previous = critic(F.avg_pool2d(x, 2))
    model.reach(STABLE)  # α = 0
    assert torch.equal(critic(x), previous)
    model.reach(STABLE + FADE)  # α = 1: the new block alone
    assert torch.equal(critic(x), critic.head(critic.blocks[0](critic.blocks[1](critic.from_image[1](x)))))


def test_real_images_are_pooled_to_the_stage_and_faded_like_the_generator():
    model, x = small(), images()
    on_network = x * (2 / 3) - 1  # 4 levels onto [−1, 1]
    model.reach(0)
    torch.testing.assert_close(model.to_network(x), F.avg_pool2d(on_network, 4))
    current = F.avg_pool2d(on_network, 2)  # stage 1: 8x8
    model.reach(STABLE)  # α = 0: the 4x4 images, upsampled
    torch.testing.assert_close(model.to_network(x), F.interpolate(F.avg_pool2d(current, 2), scale_factor=2))
    model.reach(STABLE + FADE // 2)
    torch.testing.assert_close(model.to_network(x),
                               (F.interpolate(F.avg_pool2d(current, 2), scale_factor=2) + current) / 2)
    model.reach(10**6)
    assert torch.equal(model.to_network(x), on_network)


def test_samples_of_an_earlier_stage_are_upsampled_to_the_image_size():
    model = small()
    samples = model.sample(4)  # stage 0: 4x4 images, each pixel a 4x4 block
    assert samples.shape == (4, 1, 16, 16)
    assert torch.equal(samples, F.interpolate(samples[:, :, ::4, ::4], scale_factor=4))


def test_pixel_norm_gives_unit_mean_square_over_channels_at_each_pixel():
    a = 3 * torch.randn(4, 8, 5, 5) + 1
    b = PixelNorm()(a)
    torch.testing.assert_close(b.square().mean(1), torch.ones(4, 5, 5))
    torch.testing.assert_close(b * a.norm(dim=1, keepdim=True), a * b.norm(dim=1, keepdim=True))  # same direction


def test_minibatch_stddev_adds_the_mean_over_features_of_the_batch_std():
    x = torch.randn(6, 3, 4, 4) * torch.arange(1.0, 4.0).view(1, 3, 1, 1)
    y = MinibatchStddev()(x)
    assert y.shape == (6, 4, 4, 4) and torch.equal(y[:, :3], x)
    expected = x.std(0, unbiased=False).mean()
    torch.testing.assert_close(y[:, 3], expected.expand(6, 4, 4))


def test_the_critic_sees_the_spread_of_one_batch_only():
    model, real = small(), images(size=4) * (2 / 3) - 1
    on_real, _ = model.critic_outputs(real, torch.zeros_like(real), None)
    assert torch.equal(on_real, model.critic_outputs(real, 5 * torch.randn_like(real), None)[0])


def test_equalized_layers_scale_standard_normal_weights_by_hes_constant():
    torch.manual_seed(0)
    layer = equalized(nn.Conv2d(5, 7, 3, padding=1))
    stored = layer.parametrizations.weight.original
    torch.testing.assert_close(layer.weight, stored * math.sqrt(2 / (5 * 3 * 3)))
    x = torch.randn(2, 5, 6, 6)
    torch.testing.assert_close(layer(x), F.conv2d(x, stored * math.sqrt(2 / 45), padding=1))
    wide = equalized(nn.Linear(400, 500)).parametrizations.weight.original
    assert abs(wide.mean().item()) < 0.01 and abs(wide.std().item() - 1) < 0.01  # N(0, 1)
    assert not layer.bias.any()
    layers = [m for m in small().modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)  # every layer of PGGAN


def test_defaults_are_the_papers_and_the_drift_term_is_logged():
    model, x = small(), images()
    assert isinstance(model.objective, Wasserstein) and model.gradient_penalty_weight == 10
    assert model.drift == 0.001 and model.adam_betas == (0.0, 0.99) and model.critic_steps == 1
    model.reach(STABLE + 1)
    torch.manual_seed(2)
    losses = model.critic_loss(x)
    expected = 0.001 * model.critic(model.to_network(x)).square().mean()
    torch.testing.assert_close(losses["drift"], expected)
    torch.testing.assert_close(losses["loss"], losses["critic_fake"] - losses["critic_real"]
                               + 10 * losses["gradient_penalty"] + losses["drift"])


def test_bad_options_are_refused():
    for options, message in [({"shape": (2,)}, "images"), ({"fade_steps": 0}, "fade_steps"),
                             ({"stable_steps": -1}, "stable_steps"), ({"drift": -1.0}, "drift")]:
        with pytest.raises(ValueError, match=message):
            dgm.create("pggan", **{"shape": (1, 8, 8), "levels": 2, **options})


def _fit(directory, data, **options):
    seed_everything(0)
    model = dgm.create("pggan", data=data, latent_dim=4, width=2, fade_steps=FADE, stable_steps=2)
    return fit(model, data, directory, batch_size=16, lr=1e-3, progress=False, **options)


def test_training_grows_and_a_saved_model_samples_and_resumes_at_its_stage(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = Data("tiny-images", torch.randint(0, 4, (64, 1, 8, 8), generator=generator).float(),
                torch.randint(0, 4, (16, 1, 8, 8), generator=generator).float(), levels=4)
    stopped = _fit(tmp_path / "run", data, max_epochs=1)  # batches 0-3: stopped in the fade, at α = 1/4
    loaded = dgm.load(stopped.directory)
    assert loaded.reached_step == 3 and loaded.growth() == (1, 0.25) == stopped.model.growth()
    torch.manual_seed(3)
    samples = loaded.sample(5)
    torch.manual_seed(3)
    assert torch.equal(samples, stopped.model.sample(5))
    assert samples.shape == (5, 1, 8, 8) and torch.equal(samples, samples.round())
    assert samples.min() >= 0 and samples.max() <= 3
    resumed = _fit(tmp_path / "run", data, max_epochs=2, resume=True)
    straight = _fit(tmp_path / "straight", data, max_epochs=2)
    assert resumed.model.growth() == (1, 1.0) == straight.model.growth()  # batch 7: stable
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
