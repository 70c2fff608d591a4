"""The diffusion U-Net (dgm.nn.unet): shapes at every resolution, a zero start, conditioning on time and labels, no
interaction between examples, gradients to every parameter, and clear errors."""
import pytest
import torch

from dgm.nn.unet import UNet

TINY = dict(width=8, groups=4, blocks_per_level=1)


def tiny_unet(channels_in: int = 1, seed: int = 0, **options) -> UNet:
    torch.manual_seed(seed)
    return UNet(channels_in, **{**TINY, **options})


def perturb_output(net: UNet, seed: int = 1) -> UNet:
    """The zero-initialised output convolution drawn from N(0, 0.3²), so that the output depends on the input."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in net.output[-1].parameters():
            parameter.normal_(0, 0.3)
    return net


def randomise(net: UNet, seed: int = 1) -> UNet:
    """Every parameter drawn from N(0, 0.3²), the zero-initialised ones included."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.3)
    return net


@pytest.mark.parametrize("size, multipliers", [((28, 28), (1, 2, 2)), ((28, 28), (1, 2, 2, 2)), ((32, 32), (1, 2, 2)),
                                               ((7, 5), (1, 2, 2)), ((2, 2), (1, 2)), ((4, 4), (1, 2, 2))],
                         ids=["mnist", "mnist-28-14-7-4", "cifar", "odd-7x5", "2x2", "4x4"])
def test_output_has_the_input_size_at_every_resolution(size, multipliers):
    net = randomise(tiny_unet(3, channels_out=2, multipliers=multipliers, attention_levels=(1,), heads=2))
    out = net(torch.randn(2, 3, *size), torch.tensor([0.0, 500.0]))
    assert out.shape == (2, 2, *size)
    assert torch.isfinite(out).all()
    assert tiny_unet(3)(torch.randn(2, 3, *size), torch.zeros(2)).shape == (2, 3, *size)  # channels_out = channels_in


def test_a_fresh_net_outputs_zero_and_its_blocks_start_as_their_shortcuts():
    """Zero output convolution: output 0. With it perturbed, the output depends on x only: every residual and
    attention block starts as its shortcut, so time and labels (which enter through the blocks) play no part yet."""
    net = tiny_unet(n_classes=3, attention_levels=(0, 1))
    x, t, labels = torch.randn(4, 1, 8, 8), torch.full((4,), 10.0), torch.tensor([0, 1, 2, 3])
    assert torch.equal(net(x, t, labels), torch.zeros(4, 1, 8, 8))
    perturb_output(net)
    out = net(x, t, labels)
    assert out.abs().min() > 0
    torch.testing.assert_close(net(x, t + 100, (labels + 1) % 4), out)
    assert not torch.allclose(net(x + 1, t, labels), out)


def test_the_output_depends_on_time_and_labels():
    net = randomise(tiny_unet(n_classes=3))
    x, t, labels = torch.randn(4, 1, 8, 8), torch.full((4,), 10.0), torch.tensor([0, 1, 2, 3])
    out = net(x, t, labels)
    assert (net(x, t + 1, labels) - out).abs().amax(dim=(1, 2, 3)).min() > 1e-3
    assert (net(x, t, (labels + 1) % 4) - out).abs().amax(dim=(1, 2, 3)).min() > 1e-3
    torch.testing.assert_close(net(x, torch.full((4,), 10), labels), out)  # integer steps are times like any other


def test_the_null_label_is_no_label():
    net = randomise(tiny_unet(n_classes=3))
    x, t = torch.randn(4, 1, 8, 8), torch.rand(4) * 1000
    torch.testing.assert_close(net(x, t, torch.full((4,), 3)), net(x, t))
    assert not torch.allclose(net(x, t, torch.zeros(4, dtype=torch.long)), net(x, t))


def test_examples_in_a_batch_do_not_interact():
    """In eval mode (dropout off) each example's output is what it gets alone: group normalisation, attention and
    the embeddings all act within one example."""
    net = randomise(tiny_unet(n_classes=3, dropout=0.5, attention_levels=(0, 1))).eval()
    x, t, labels = torch.randn(5, 1, 7, 7), torch.rand(5) * 1000, torch.tensor([0, 1, 2, 3, 1])
    batch = net(x, t, labels)
    for i in range(5):
        torch.testing.assert_close(net(x[i:i + 1], t[i:i + 1], labels[i:i + 1]), batch[i:i + 1])


def test_dropout_acts_in_training_mode_only():
    net = randomise(tiny_unet(dropout=0.5))
    x, t = torch.randn(2, 1, 8, 8), torch.zeros(2)
    assert not torch.equal(net(x, t), net(x, t))
    net.eval()
    assert torch.equal(net(x, t), net(x, t))


def test_one_backward_reaches_every_parameter():
    net = perturb_output(tiny_unet(n_classes=3, attention_levels=(0, 1)))
    x, t, labels = torch.randn(4, 1, 8, 8), torch.rand(4) * 1000, torch.tensor([0, 1, 2, 3])
    net(x, t, labels).sum().backward()
    assert not [name for name, parameter in net.named_parameters() if parameter.grad is None]
    randomise(net).zero_grad()
    net(x, t, labels).sum().backward()
    assert not [name for name, parameter in net.named_parameters() if not parameter.grad.any()]


def test_parameter_counts_of_the_docstring_and_of_ddpm_cifar10():
    """DDPM's CIFAR-10 net (width 128, multipliers (1, 2, 2, 2), attention at 16x16) has 35.7 million parameters
    (Ho et al., 2020, appendix B); built on the meta device, which allocates nothing."""
    def parameters(channels: int, **options) -> int:
        with torch.device("meta"):
            return sum(parameter.numel() for parameter in UNet(channels, **options).parameters())

    assert parameters(3, width=128, multipliers=(1, 2, 2, 2), attention_levels=(1,), groups=32) == 35_746_307
    assert parameters(1) == 1_623_169
    assert parameters(1, blocks_per_level=1) == 1_112_801
    assert parameters(1, n_classes=10) == 1_623_169 + 11 * 4 * 32


def test_bad_inputs_and_options_are_refused_clearly():
    net, conditional = tiny_unet(), tiny_unet(n_classes=3)
    x, t = torch.randn(2, 1, 8, 8), torch.zeros(2)
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\)"):
        net(x[0], t)
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\)"):
        net(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match=r"one time per example, shape \(2,\)"):
        net(x, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="not class-conditional"):
        net(x, t, torch.zeros(2, dtype=torch.long))
    for labels in (torch.tensor([0, 4]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match=r"labels must lie in 0\.\.3"):
            conditional(x, t, labels)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        conditional(x, t, torch.zeros(3, dtype=torch.long))
    for options, message in [(dict(multipliers=()), "at least one level"),
                             (dict(multipliers=(1, 0)), "every entry of multipliers"),
                             (dict(attention_levels=(3,)), r"level indices 0\.\.2"),
                             (dict(width=10), "multiple of groups"),
                             (dict(width=7, groups=1), "width must be even"),
                             (dict(blocks_per_level=0), "blocks_per_level"),
                             (dict(n_classes=0), "n_classes"),
                             (dict(heads=3), "multiple of heads")]:
        with pytest.raises(ValueError, match=message):
            tiny_unet(**{"multipliers": (1, 2, 2), "attention_levels": (2,), **options})


def test_patches_fold_pixels_into_channels_and_back():
    """``patch = 2`` runs the U-Net on (4C, H/2, W/2): the output has the input's size, every input pixel reaches
    every output pixel of its 2x2 block, and a size that the patch does not divide is refused."""
    net = randomise(tiny_unet(2, patch=2, multipliers=(1, 2), attention_levels=(1,)))
    x = torch.randn(1, 2, 8, 12, requires_grad=True)
    out = net(x, torch.tensor([3.0]))
    assert out.shape == (1, 2, 8, 12)
    for row, column in [(0, 0), (0, 1), (1, 0), (1, 1), (5, 10)]:
        gradient, = torch.autograd.grad(out[0, 1, row, column], x, retain_graph=True)
        block = gradient[0, :, row - row % 2:row - row % 2 + 2, column - column % 2:column - column % 2 + 2]
        assert (block != 0).all()
    with torch.device("meta"):
        assert sum(p.numel() for p in UNet(1, width=64, multipliers=(1, 1), blocks_per_level=1, attention_levels=(1,),
                                           patch=2).parameters()) == 1_133_636
    with pytest.raises(ValueError, match=r"patch 2 must divide the image's height and width, got \(7, 8\)"):
        net(torch.randn(1, 2, 7, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="patch"):
        tiny_unet(patch=0)
