"""SN-GAN and SAGAN: the residual blocks against their formulas, the feature-map sizes of Table 4, the projection
output, spectral norms of 1, SAGAN's attention (identity at the start, at its resolution), and a saved run."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dgm
from dgm.data.base import Data
from dgm.models.adversarial.resnet_networks import critic_resolutions, generator_resolutions
from dgm.nn.gan_blocks import CriticResidualBlock, GatedSelfAttention, GeneratorResidualBlock
from dgm.training import fit, seed_everything

TINY = {"width": 8, "latent_dim": 8}


def _zero(conv: nn.Conv2d) -> None:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


@pytest.mark.parametrize("size_in, size_out", [(7, 14), (14, 28), (4, 8), (16, 32)])
def test_generator_block_doubles_the_size_and_its_shortcut_is_an_upsampled_1x1_convolution(size_in, size_out):
    torch.manual_seed(0)
    block = GeneratorResidualBlock(6, 4, n_classes=3)
    h, labels = torch.randn(2, 6, size_in, size_in), torch.tensor([0, 2])
    assert block(h, labels).shape == (2, 4, size_out, size_out)
    _zero(block.conv2)  # the residual branch now adds nothing
    shortcut = F.conv2d(h, block.shortcut.weight, block.shortcut.bias)
    expected = shortcut.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(block(h, labels), expected)


@pytest.mark.parametrize("size", [28, 32])
def test_critic_blocks_halve_the_size_where_asked_and_their_shortcut_is_pooled(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    first = CriticResidualBlock(3, 8, downsample=True, first=True)
    assert first(x).shape == (2, 8, size // 2, size // 2)
    _zero(first.conv2)
    pooled = (x[:, :, 0::2, 0::2] + x[:, :, 1::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 1::2]) / 4
    torch.testing.assert_close(first(x), F.conv2d(pooled, first.shortcut.weight, first.shortcut.bias))
    keeping = CriticResidualBlock(8, 8, downsample=False)
    h = torch.randn(2, 8, size // 2, size // 2)
    assert keeping(h).shape == h.shape
    _zero(keeping.conv2)
    torch.testing.assert_close(keeping(h), h)  # identity shortcut


def test_only_the_first_critic_block_reads_negative_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    for first in (True, False):
        block = CriticResidualBlock(4, 4, downsample=False, first=first)
        residual, residual_of_positive_part = (block(h) - block.shortcut(h) for h in (x, x.relu()))
        assert torch.allclose(residual, residual_of_positive_part) is (not first)


def test_feature_maps_follow_table_4():
    assert generator_resolutions((3, 32, 32)) == [4, 8, 16, 32]
    assert critic_resolutions((3, 32, 32)) == [16, 8, 8, 8]
    assert generator_resolutions((1, 28, 28)) == [7, 14, 28]
    assert critic_resolutions((1, 28, 28)) == [14, 14, 14]
    assert dgm.create("sagan", shape=(1, 28, 28), levels=256, **TINY).attention_resolution == 14
    assert dgm.create("sagan", shape=(3, 32, 32), levels=256, **TINY).attention_resolution == 16


@pytest.mark.parametrize("name", ["sngan", "sagan"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_images_in_the_data_shape_from_a_generator_in_minus_one_one(name, shape):
    torch.manual_seed(0)
    model = dgm.create(name, shape=shape, levels=256, **TINY)
    out = model.generator(torch.randn(5, 8))
    assert out.shape == (5, *shape) and out.abs().max() <= 1
    samples = model.sample(5)
    assert samples.shape == (5, *shape)
    assert torch.equal(samples, samples.round()) and samples.min() >= 0 and samples.max() <= 255


@pytest.mark.parametrize("name", ["sngan", "sagan"])
def test_the_conditional_critic_is_a_projection(name):
    """D(x, a) − D(x, b) = ⟨V_a − V_b, φ(x)⟩ (Miyato & Koyama, 2018, eq. 3)."""
    torch.manual_seed(0)
    model = dgm.create(name, shape=(1, 28, 28), levels=256, n_classes=4, **TINY).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    a, b = torch.tensor([0, 1, 3]), torch.tensor([2, 2, 0])
    embedding = model.critic.head.embedding.weight
    expected = ((embedding[a] - embedding[b]) * model.critic.features(x)).sum(1)
    torch.testing.assert_close(model.critic(x, a) - model.critic(x, b), expected)


def _spectral_norms(network: nn.Module) -> list[float]:
    layers = [m for m in network.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers), "a layer without spectral norm"
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item() for m in layers]


@pytest.mark.parametrize("name", ["sngan", "sagan"])
def test_every_critic_layer_has_spectral_norm_one_and_sagans_generator_too(name):
    torch.manual_seed(0)
    model = dgm.create(name, shape=(1, 8, 8), levels=256, **TINY)
    for _ in range(50):  # power iteration, one step per training call
        model.critic(torch.randn(4, 1, 8, 8))
        model.generator(torch.randn(4, 8))
    networks = [model.critic] + ([model.generator] if name == "sagan" else [])
    for network in networks:
        assert max(abs(sigma - 1) for sigma in _spectral_norms(network)) < 1e-3
    if name == "sngan":
        assert not any(hasattr(m, "parametrizations") for m in model.generator.modules())


def test_sagan_attention_starts_as_the_identity_at_the_requested_resolution():
    torch.manual_seed(0)
    model = dgm.create("sagan", shape=(3, 32, 32), levels=256, attention_resolution=8, **TINY)
    seen = {}
    for network in (model.generator, model.critic):
        blocks = [m for m in network.modules() if isinstance(m, GatedSelfAttention)]
        assert len(blocks) == 1
        blocks[0].register_forward_hook(lambda module, inputs, output, network=network:
                                         seen.update({network: (inputs[0], output)}))
    model.critic(model.generator(torch.randn(4, 8)))
    for inputs, output in seen.values():
        assert inputs.shape[2:] == (8, 8)
        torch.testing.assert_close(output, inputs)  # γ = 0


def test_conditional_samples_change_with_the_label():
    torch.manual_seed(0)
    model = dgm.create("sngan", shape=(1, 8, 8), levels=256, n_classes=3, **TINY).eval()
    for module in model.generator.modules():  # classes that the (untrained) scales and shifts tell apart
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight)
    z = torch.randn(1, 8).repeat(3, 1)
    images = model.generator(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(2)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"attention_resolution .* one of \[14\]"):
        dgm.create("sagan", shape=(1, 28, 28), levels=256, attention_resolution=28)
    with pytest.raises(ValueError, match="attention_resolution"):
        dgm.create("sagan", shape=(3, 32, 32), levels=256, attention_resolution=12)
    with pytest.raises(ValueError, match=r"images of shape \(C, H, W\)"):
        dgm.create("sngan", shape=(2,), levels=256)
    with pytest.raises(ValueError, match="width"):
        dgm.create("sngan", shape=(1, 8, 8), levels=256, width=0)


def test_the_papers_defaults():
    sngan = dgm.create("sngan", shape=(1, 8, 8), levels=256)
    sagan = dgm.create("sagan", shape=(1, 8, 8), levels=256)
    assert (sngan.critic_steps, sngan.generator_lr, sngan.critic_lr, sngan.adam_betas) == (5, 2e-4, 2e-4, (0, 0.9))
    assert (sagan.critic_steps, sagan.generator_lr, sagan.critic_lr, sagan.adam_betas) == (1, 1e-4, 4e-4, (0, 0.9))
    assert type(sngan.objective).__name__ == type(sagan.objective).__name__ == "Hinge"


def test_a_trained_run_reloads_with_the_same_samples(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = Data("tiny-images", torch.randint(0, 256, (64, 1, 8, 8), generator=generator).float(),
                torch.randint(0, 256, (16, 1, 8, 8), generator=generator).float(), levels=256)
    seed_everything(0)
    model = dgm.create("sngan", data=data, critic_steps=2, **TINY)
    run = fit(model, data, tmp_path / "run", max_steps=4, batch_size=16, progress=False)
    trained, loaded = run.model.eval(), dgm.load(run.directory).eval()
    torch.manual_seed(1)
    expected = trained.sample(6)
    torch.manual_seed(1)
    torch.testing.assert_close(loaded.sample(6), expected)
