"""Spectral normalisation: the course's power iteration against the SVD, the layer against PyTorch's."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from dgm.nn.spectral_norm import power_iteration, spectral_norm


def test_power_iteration_finds_the_top_singular_triple_of_the_course_matrix():
    matrix = torch.tensor([[1.0, 2, 3], [2, 3, 4], [3, 4, 5]], dtype=torch.float64)  # homework 6's test matrix
    torch.manual_seed(0)
    sigma, u, v = power_iteration(matrix, 10)
    left, singular, right = np.linalg.svd(matrix.numpy())
    assert abs(sigma.item() - singular[0]) < 1e-10
    assert np.allclose(np.abs(u.numpy()), np.abs(left[:, 0]), atol=1e-8)
    assert np.allclose(np.abs(v.numpy()), np.abs(right[0]), atol=1e-8)
    assert torch.allclose(matrix @ v, sigma * u, atol=1e-8)  # W v = σ u


def test_the_layer_sigma_is_within_1e_3_of_the_svd_after_its_iterations():
    """After construction (15 steps) and 20 training calls of one step, as a critic's first steps."""
    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(64, 32))
    for _ in range(20):
        layer(torch.randn(4, 64))
    weight = layer.parametrizations.weight.original.detach()
    pair = layer.parametrizations.weight[0]
    estimate = (pair.u @ weight @ pair.v).item()  # the stored pair of the last training call
    exact = torch.linalg.matrix_norm(weight, ord=2).item()
    assert abs(estimate - exact) / exact < 1e-3
    assert abs(torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() - 1) < 1e-3


@pytest.mark.parametrize("make", [lambda: nn.Linear(8, 16), lambda: nn.Conv2d(3, 4, 3)])
def test_the_layer_agrees_with_pytorch_spectral_norm(make):
    torch.manual_seed(0)
    ours, theirs = make().double(), make().double()
    theirs.load_state_dict(ours.state_dict())
    spectral_norm(ours, iterations=2)
    torch_spectral_norm(theirs, n_power_iterations=2)
    x = torch.randn(5, *([8] if isinstance(ours, nn.Linear) else [3, 6, 6]), dtype=torch.float64)
    for _ in range(30):  # both pairs converge to the top singular vectors, from different random starts
        ours(x), theirs(x)
    torch.testing.assert_close(ours.weight, theirs.weight, atol=1e-5, rtol=0)
    out_ours, out_theirs = ours(x), theirs(x)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=0)
    gradient_ours, = torch.autograd.grad(out_ours.square().sum(), ours.parametrizations.weight.original)
    gradient_theirs, = torch.autograd.grad(out_theirs.square().sum(), theirs.parametrizations.weight.original)
    torch.testing.assert_close(gradient_ours, gradient_theirs, atol=1e-5, rtol=0)


def test_under_bf16_autocast_sigma_stays_in_float32():
    """Mixed precision runs the layer's matmul in bfloat16 (about 3 significant digits); the power iteration and σ
    run in the weight's float32, so a training call updates the pair and normalises the weight as without
    autocast."""
    torch.manual_seed(0)
    layers = {name: spectral_norm(nn.Linear(64, 32)) for name in ("float32", "bf16")}
    layers["bf16"].load_state_dict(layers["float32"].state_dict())
    x = torch.randn(4, 64)
    layers["float32"](x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layers["bf16"](x)
    parametrizations = {name: layer.parametrizations.weight for name, layer in layers.items()}
    assert parametrizations["bf16"][0].u.dtype == torch.float32
    torch.testing.assert_close(parametrizations["bf16"][0].u, parametrizations["float32"][0].u, atol=1e-6, rtol=0)
    torch.testing.assert_close(layers["bf16"].weight, layers["float32"].weight, atol=1e-6, rtol=0)


def test_evaluation_keeps_the_pair_and_bad_arguments_are_refused():
    layer = spectral_norm(nn.Linear(4, 3)).eval()
    before = layer.parametrizations.weight[0].u.clone()
    layer(torch.randn(2, 4))
    assert torch.equal(layer.parametrizations.weight[0].u, before)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        spectral_norm(nn.Linear(4, 3), name="bias")
    with pytest.raises(ValueError, match="iterations"):
        spectral_norm(nn.Linear(4, 3), iterations=0)


def test_an_averaged_pair_shorter_than_unit_length_still_normalises_the_weight():
    """An EMA averages ``u`` and ``v`` with the weights; where the vectors turned, the average is short. Evaluation
    iterates from its direction, so the weight still has spectral norm 1 (``uᵀ W v`` of the short pair would make it
    100)."""
    torch.manual_seed(1)
    layer = spectral_norm(nn.Linear(16, 8))
    for _ in range(20):
        layer(torch.randn(4, 16))
    parametrization = layer.parametrizations.weight[0]
    parametrization.u.mul_(0.1)
    parametrization.v.mul_(0.1)
    layer.eval()
    assert abs(torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() - 1) < 1e-3
