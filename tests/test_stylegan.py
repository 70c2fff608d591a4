"""StyleGAN: modulated convolutions against their definition (StyleGAN2, eqs. 1–3), the truncation trick in W, style
mixing in training and in the grid of Figure 3, the moving average w̄, noise inputs, class conditioning, and a tiny
fit that survives a save and load."""
import pytest
import torch
import torch.nn.functional as F

import dgm
from dgm.data.base import Data
from dgm.nn.style import MappingNetwork, ModulatedConv2d, NoiseInjection
from dgm.training import fit, seed_everything


def tiny(**options):
    """8x8 images: resolutions 4 and 8, two style blocks each, so four styles."""
    return dgm.create("stylegan", **({"shape": (1, 8, 8), "levels": 256, "latent_dim": 8, "width": 4, "w_dim": 8,
                                      "mapping_layers": 2} | options))


def with_noise(model):
    """``model`` with every noise scale at 0.5, so that the noise inputs change its images."""
    for module in model.generator.modules():
        if isinstance(module, NoiseInjection):
            torch.nn.init.constant_(module.scale, 0.5)
    return model


def images(model, z, labels=None, **options):
    """The generator's raw images (before rounding to levels) from latents ``z``, without mixing."""
    return model.generator.synthesis(model.styles_of(z, labels), **options)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_convolution_is_each_samples_own_convolution(demodulate):
    torch.manual_seed(0)
    layer = ModulatedConv2d(3, 5, 3, w_dim=4, demodulate=demodulate)
    x, w = torch.randn(4, 3, 6, 6), torch.randn(4, 4)
    out = layer(x, w)
    for i in range(len(x)):
        weight = layer.weight * layer.affine(w[i])[None, :, None, None]  # eq. 1: w'_ijk = s_i w_ijk
        if demodulate:  # eq. 3: w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2)
            weight = weight / weight.square().sum(dim=(1, 2, 3), keepdim=True).sqrt()
        torch.testing.assert_close(out[i:i + 1], F.conv2d(x[i:i + 1], weight, padding=1), rtol=1e-5, atol=1e-5)


def test_equalised_learning_rate_moves_each_layer_by_its_own_constant():
    """Adam's first step moves every stored weight by ``lr`` (``m̂ / √v̂ = ±1``), so a layer used as ``λ c w`` moves
    by ``λ c lr``: the mapping network's layers (λ = 0.01, He's gain for LeakyReLU(0.2)) 100 times more slowly than
    a modulated convolution (λ = 1, c = 1 / √fan_in); at the start each keeps He's scale."""
    torch.manual_seed(0)
    mapping = MappingNetwork(64, 256, 2, lr_multiplier=0.01).double()
    conv = ModulatedConv2d(16, 8, 3, w_dim=256).double()
    linear = mapping.net[1][0]  # 256 inputs
    gain = torch.nn.init.calculate_gain("leaky_relu", 0.2)
    assert abs(linear.weight.std().item() - gain / 16) < 0.002 and abs(conv.weight.std().item() - 1 / 12) < 0.004
    before = [linear.weight.detach().clone(), linear.bias.detach().clone(), conv.weight.detach().clone()]
    conv(torch.randn(4, 16, 5, 5).double(), mapping(torch.randn(4, 64).double())).square().sum().backward()
    torch.optim.Adam([*mapping.parameters(), *conv.parameters()], lr=1e-3, eps=1e-30).step()
    for after, start, step in zip([linear.weight, linear.bias, conv.weight], before,
                                  [1e-3 * 0.01 * gain / 16, 1e-3 * 0.01, 1e-3 / 12]):
        torch.testing.assert_close((after - start).abs(), torch.full_like(start, step), rtol=1e-6, atol=0)


def test_demodulation_restores_unit_variance():
    torch.manual_seed(0)
    layer = ModulatedConv2d(16, 8, 3, w_dim=4)
    w = 3 * torch.randn(4, 4)  # styles far from 1
    norms = layer.modulated_weight(w).square().sum(dim=(2, 3, 4))
    torch.testing.assert_close(norms, torch.ones(4, 8))
    out = layer(torch.randn(4, 16, 66, 66), w)[:, :, 1:-1, 1:-1]  # away from the zero padding
    variance = out.var(dim=(2, 3))
    assert abs(variance.mean().item() - 1) < 0.03 and (variance - 1).abs().max() < 0.15, variance
    layer.demodulate = False
    assert (layer(torch.randn(4, 16, 66, 66), w).var(dim=(2, 3)) - 1).abs().mean() > 1  # modulation alone does not


def test_noise_starts_at_zero_and_can_be_left_out():
    torch.manual_seed(0)
    model = tiny()
    scales = [m.scale for m in model.generator.modules() if isinstance(m, NoiseInjection)]
    assert len(scales) == model.generator.n_styles == 4 and all((s == 0).all() for s in scales)
    with_noise(model)
    w = model.styles_of(torch.randn(3, 8), None)
    assert not torch.equal(model.generator.synthesis(w), model.generator.synthesis(w))
    torch.testing.assert_close(model.generator.synthesis(w, noise=False), model.generator.synthesis(w, noise=False))


def test_truncation_in_w():
    torch.manual_seed(0)
    model = with_noise(tiny())
    model.generator.w_mean.copy_(torch.randn(8))
    at_mean = model.sample(6, psi=0, noise=False)  # every w moved onto w̄: one image
    assert all(torch.equal(image, at_mean[0]) for image in at_mean)
    assert not all(torch.equal(image, at_mean[0]) for image in model.sample(6, noise=False))
    torch.manual_seed(1)
    untruncated = model.sample(6)
    torch.manual_seed(1)
    assert torch.equal(model.sample(6, psi=1), untruncated)
    z = torch.randn(5, 8)  # in between: w̄ + ψ (w − w̄)
    w, w_mean = model.styles_of(z, None), model.generator.w_mean
    torch.testing.assert_close(model.styles_of(z, None, psi=0.7), w_mean + 0.7 * (w - w_mean))


def test_style_mixing_grid():
    torch.manual_seed(0)
    model = with_noise(tiny())
    z_rows, z_columns, n_styles = torch.randn(2, 8), torch.randn(3, 8), model.generator.n_styles
    torch.manual_seed(1)  # the same noise: one row from z_columns alone, one column from z_rows alone
    only_columns = model.mix_styles(z_rows[:1], z_columns, 0)
    torch.manual_seed(1)
    assert torch.equal(only_columns[0], model.to_data(model.generator(z_columns)))
    torch.manual_seed(1)
    only_rows = model.mix_styles(z_rows, z_columns[:1], n_styles)
    torch.manual_seed(1)
    assert torch.equal(only_rows[:, 0], model.to_data(model.generator(z_rows)))
    grid = model.mix_styles(z_rows, z_columns, 0, noise=False)
    assert grid.shape == (2, 3, 1, 8, 8) and torch.equal(grid[0], grid[1])
    grid = model.mix_styles(z_rows, z_columns, n_styles, noise=False)
    assert torch.equal(grid[:, 0], grid[:, 1]) and torch.equal(grid[:, 0], grid[:, 2])
    w = model.styles_of(z_rows, None)  # in between: the first two styles from the row, the rest from the column
    halves = model.generator.synthesis(torch.cat([w[:1, :2], w[1:, 2:]], dim=1), noise=False)
    mixed = model.mix_styles(z_rows[:1], z_rows[1:], 2, noise=False)[0, 0]
    sources = model.to_data(model.generator.synthesis(w, noise=False))
    assert torch.equal(mixed, model.to_data(halves)[0])
    assert not torch.equal(mixed, sources[0]) and not torch.equal(mixed, sources[1])
    with pytest.raises(ValueError, match="crossover"):
        model.mix_styles(z_rows, z_columns, n_styles + 1)


def test_style_mixing_in_training_only():
    torch.manual_seed(0)
    model = tiny(style_mixing=1.0).train()
    received = []  # what the first and the last style block receive
    for block in (model.generator.stages[0].blocks[0], model.generator.stages[-1].blocks[-1]):
        block.register_forward_pre_hook(lambda module, args: received.append(args[1]))
    model.generate(32, None)
    first, last = received
    assert ((first - last).abs().amax(dim=1) > 0).all()  # every image got two latents
    w = model.styles(64, None)
    crossover = (w != w[:, :1]).any(dim=2).float().argmax(dim=1)  # the first block whose w is not the first's
    assert set(crossover.tolist()) == {1, 2, 3}
    for row, c in zip(w, crossover):
        assert (row[:c] == row[0]).all() and (row[c:] == row[-1]).all()
    unmixed = tiny(style_mixing=0.0).train().styles(16, None)
    assert (unmixed == unmixed[:, :1]).all()
    model.eval()
    received.clear()
    model.generate(8, None)
    assert torch.equal(received[0], received[1])


def test_w_mean_is_a_moving_average_of_mapped_w_in_training():
    torch.manual_seed(0)
    model = tiny().train()
    model.generator.w_mean.copy_(torch.randn(8))
    before = model.generator.w_mean.clone()
    torch.manual_seed(1)
    model.styles(32, None)
    torch.manual_seed(1)
    mapped = model.generator.mapping(model.draw_latents(32))
    torch.testing.assert_close(model.generator.w_mean, 0.995 * before + 0.005 * mapped.mean(dim=0))
    after = model.generator.w_mean.clone()
    model.eval()
    model.styles(32, None)
    model.sample(4)
    model.loss(torch.zeros(4, 1, 8, 8))
    assert torch.equal(model.generator.w_mean, after)


def test_conditional_generation_depends_on_the_label():
    torch.manual_seed(0)
    model = tiny(n_classes=3)
    z = torch.randn(4, 8)
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    torch.testing.assert_close(images(model, z, zeros, noise=False), images(model, z, zeros, noise=False))
    assert (images(model, z, zeros, noise=False) - images(model, z, ones, noise=False)).abs().amax() > 1e-3
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(4)
    assert model.mix_styles(z, z[:2], 1, labels_rows=zeros, labels_columns=ones[:2]).shape == (4, 2, 1, 8, 8)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="images"):
        dgm.create("stylegan", shape=(2,))
    with pytest.raises(ValueError, match="style_mixing"):
        tiny(style_mixing=1.5)
    with pytest.raises(ValueError, match="mapping_layers"):
        tiny(mapping_layers=0)
    with pytest.raises(ValueError, match="mapping_lr_multiplier"):
        tiny(mapping_lr_multiplier=0)
    with pytest.raises(ValueError, match="psi"):
        tiny().sample(2, psi="0.7")
    with pytest.raises(ValueError, match="latents"):
        tiny().mix_styles(torch.randn(2, 5), torch.randn(2, 8), 1)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_tiny_fit_survives_save_and_load(tmp_path, precision):
    """Also under bf16 autocast (the recipe's precision): w̄ stays a float32 average, and truncation mixes it with
    the bf16 ``w`` of sampling in the run's precision."""
    from dgm.core import sample_in_precision
    generator = torch.Generator().manual_seed(0)
    data = Data("binary", torch.randint(0, 2, (64, 1, 8, 8), generator=generator).float(),
                torch.randint(0, 2, (16, 1, 8, 8), generator=generator).float(), levels=2)
    seed_everything(0)
    model = dgm.create("stylegan", data=data, latent_dim=8, width=4, w_dim=8, mapping_layers=2)
    fit(model, data, tmp_path / "run", max_steps=4, batch_size=16, lr=1e-3, progress=False, precision=precision)
    assert model.generator.w_mean.dtype == torch.float32
    assert model.generator.w_mean.abs().sum() > 0  # tracked during training
    loaded = dgm.load(model.save(tmp_path / "saved"))
    assert torch.equal(loaded.generator.w_mean, model.generator.w_mean)
    torch.manual_seed(2)
    expected = sample_in_precision(model.eval(), 5, precision, psi=0.7)
    torch.manual_seed(2)
    assert torch.equal(sample_in_precision(loaded.eval(), 5, precision, psi=0.7), expected)


def test_pictures_of_a_style_based_generator(tmp_path):
    """The run pictures of a StyleGAN: its samples, the style-mixing grid and the truncation sweep in psi."""
    from dgm.data.base import Data
    from dgm.runs import write_pictures
    torch.manual_seed(0)
    data = Data("tiny", torch.randint(0, 256, (16, 1, 8, 8)).float(), torch.randint(0, 256, (8, 1, 8, 8)).float(),
                levels=256)
    model = dgm.create("stylegan", data=data, width=4, w_dim=8, latent_dim=8, mapping_layers=1).eval()
    written = {path.name for path in write_pictures(model, data, tmp_path)}
    assert {"samples.png", "style_mixing.png", "truncation.png"} <= written

