"""MADE: the masks (Germain et al., 2015), the autoregressive property, normalisation, sampling and a short fit."""
import itertools
import math

import pytest
import torch
from scipy import stats

from dgm.models.autoregressive.made import MADE
from dgm.nn.made import MADENetwork, MaskedLinear


def mask_product(net: MADENetwork) -> torch.Tensor:
    """``M_out · M_L ··· M_1``: entry ``[i, j]`` counts paths from input feature ``j`` to output feature ``i``."""
    product = net.masks[0].double()
    for mask in net.masks[1:]:
        product = mask.double() @ product
    return product


def dimension_paths(net: MADENetwork) -> torch.Tensor:
    """Path counts summed over the features of each dimension, ``(D_out, D_in)``."""
    return mask_product(net).view(net.dim, net.out_per_dim, net.dim, net.in_per_dim).sum(dim=(1, 3))


def allowed(net: MADENetwork) -> torch.Tensor:
    """``[i, j]`` is True where output ``i`` may depend on input ``j``: ``rank(j) < rank(i)``."""
    return net.order[None, :] < net.order[:, None]


def all_configurations(shape: tuple[int, ...], levels: int) -> torch.Tensor:
    cells = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))), dtype=torch.float32)
    return cells.view(-1, *shape)


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Standard-normal parameters: far from the near-uniform initial distribution, so errors would show."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))


NETWORKS = [  # dim, hidden, out_per_dim, in_per_dim, order, seed
    (4, [6], 1, 1, "natural", 0),
    (5, [12, 12, 12], 2, 1, "natural", 0),
    (5, [32, 32, 32], 3, 1, "random", 1),
    (4, [24, 24], 2, 3, "random", 2),
    (3, [], 2, 2, "random", 3),
]


# -- the network ----------------------------------------------------------------------------------------------------
def test_masked_linear_uses_only_unmasked_weights():
    torch.manual_seed(0)
    layer = MaskedLinear(3, 2)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    layer.set_mask(mask)
    x = torch.randn(4, 3)
    layer(x).sum().backward()
    torch.testing.assert_close(layer(x), x @ (layer.weight * mask).T + layer.bias)
    assert torch.all(layer.weight.grad[mask == 0] == 0) and torch.all(layer.weight.grad[mask == 1] != 0)
    with pytest.raises(ValueError, match="shape"):
        layer.set_mask(torch.ones(3, 2))


def test_mask_product_matches_the_seminar_pattern():
    """Seminar 2: nin=2, bins=60, hidden [100, 100, 100]; only x̂_1 sees x_0, by BINS·ΠH paths per output bin."""
    bins, hidden = 60, [100, 100, 100]
    net = MADENetwork(2, hidden, out_per_dim=bins, in_per_dim=bins)
    per_output_bin = mask_product(net).view(2, bins, 2, bins).sum(dim=3)
    expected = torch.zeros(2, bins, 2, dtype=torch.float64)
    expected[1, :, 0] = bins * math.prod(hidden)
    assert torch.equal(per_output_bin, expected)


def test_one_hidden_layer_mask_product_counts_paths():
    """HW1 theory: M = M_V·M_W; natural order, width 6 over D=4 gives degrees 0,1,2,0,1,2 so M[i, j] = 2(i - j)."""
    net = MADENetwork(4, [6], out_per_dim=1)
    i, j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    expected = torch.where(i > j, 2 * (i - j), 0).double()
    assert torch.equal(mask_product(net), expected)


@pytest.mark.parametrize("dim, hidden, out_per_dim, in_per_dim, order, seed", NETWORKS)
def test_every_allowed_connection_exists_and_no_other(dim, hidden, out_per_dim, in_per_dim, order, seed):
    net = MADENetwork(dim, hidden, out_per_dim, in_per_dim, order=order, seed=seed)
    assert sorted(net.order.tolist()) == list(range(dim))
    assert torch.equal(dimension_paths(net) > 0, allowed(net))


@pytest.mark.parametrize("dim, hidden, out_per_dim, in_per_dim, order, seed", NETWORKS)
def test_jacobian_is_strictly_triangular_in_the_ordering(dim, hidden, out_per_dim, in_per_dim, order, seed):
    """∂ output_i / ∂ input_j is zero exactly where rank(j) >= rank(i).

    Tanh units are never dead, so every allowed entry is nonzero; with ReLU an entry can vanish on a batch because
    all its paths pass through inactive units, which would say nothing about the masks.
    """
    torch.manual_seed(seed)
    net = MADENetwork(dim, hidden, out_per_dim, in_per_dim, order=order, seed=seed, activation=torch.nn.Tanh)
    inputs = torch.randn(16, dim * in_per_dim)
    jacobians = torch.func.vmap(torch.func.jacrev(lambda x: net(x[None])[0]))(inputs)  # (16, dim, out, dim * in)
    sensitivity = jacobians.view(16, dim, out_per_dim, dim, in_per_dim).abs().sum(dim=(0, 2, 4))
    assert torch.all(sensitivity[~allowed(net)] == 0)
    assert torch.all(sensitivity[allowed(net)] > 0)


def test_random_order_depends_on_the_seed_and_natural_order_is_the_identity():
    assert torch.equal(MADENetwork(6, [8], 1).order, torch.arange(6))
    orders = {tuple(MADENetwork(6, [8], 1, order="random", seed=seed).order.tolist()) for seed in range(5)}
    assert len(orders) > 1
    net = MADENetwork(6, [8], 1, order="random", seed=0)
    assert torch.equal(net.order[net.sampling_order], torch.arange(6))


def test_reloaded_network_has_identical_masks_and_outputs():
    net = MADENetwork(5, [16, 16], 2, order="random", seed=3)
    other = MADENetwork(5, [16, 16], 2, order="random", seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(net.masks, other.masks))
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.order, net.order)
    assert all(torch.equal(a, b) for a, b in zip(net.masks, other.masks))
    x = torch.randn(3, 5)
    torch.testing.assert_close(other(x), net(x))


def test_network_rejects_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        MADENetwork(3, [4], 1, order="reverse")
    with pytest.raises(ValueError, match="hidden"):
        MADENetwork(3, [4, 0], 1)
    with pytest.raises(ValueError, match=r"\(B, 3 \* 2\)"):
        MADENetwork(3, [4], 1, in_per_dim=2)(torch.zeros(2, 3))


# -- the model: normalisation and the autoregressive property --------------------------------------------------------
DISCRETE = [  # shape, levels, order, input_encoding
    ((3,), 3, "natural", "one_hot"),
    ((3,), 3, "random", "one_hot"),
    ((3,), 3, "random", "scaled"),
    ((1, 2, 2), 2, "natural", None),
    ((1, 2, 2), 2, "random", None),
]


@pytest.mark.parametrize("shape, levels, order, input_encoding", DISCRETE)
def test_probabilities_of_all_configurations_sum_to_one(shape, levels, order, input_encoding):
    model = MADE(shape, levels, hidden=[16, 16], order=order, seed=1, input_encoding=input_encoding)
    randomise(model)
    with torch.no_grad():
        total = model.log_prob(all_configurations(shape, levels)).exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_unmasked_network_is_not_normalised():
    """Control for the test above: letting every output see every input breaks the normalisation."""
    model = MADE((3,), 3, hidden=[16, 16])
    randomise(model)
    for mask in model.net.masks:
        mask.fill_(1)
    with torch.no_grad():
        total = model.log_prob(all_configurations((3,), 3)).exp().sum()
    assert abs(total.item() - 1) > 1e-2


@pytest.mark.parametrize("order", ["natural", "random"])
def test_continuous_density_integrates_to_one(order):
    model = MADE((2,), hidden=[32, 32], order=order, seed=2)
    step = 0.05
    axis = torch.arange(-12, 12 + step / 2, step)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum() * step**2
    assert abs(mass.item() - 1) < 1e-3


@pytest.mark.parametrize("shape, levels, order", [((4,), 5, "natural"), ((5,), 4, "random"),
                                                  ((2, 2, 2), 3, "random"), ((5,), None, "random")])
def test_changing_a_dimension_never_changes_earlier_conditionals(shape, levels, order):
    torch.manual_seed(0)
    model = MADE(shape, levels, hidden=[32, 32], order=order, seed=5)
    x = torch.randint(0, levels, (6, *shape)).float() if levels else torch.randn(6, *shape)
    before = model.conditionals(x)
    rank = model.net.order
    for i in range(model.dim):
        changed = x.reshape(6, -1).clone()
        changed[:, i] = (changed[:, i] + 1) % levels if levels else changed[:, i] + 3
        after = model.conditionals(changed.view_as(x))
        unaffected = rank <= rank[i]
        assert torch.equal(after[:, unaffected], before[:, unaffected])
        if rank[i] < model.dim - 1:  # and the change reaches the dimensions after i
            assert not torch.allclose(after[:, ~unaffected], before[:, ~unaffected])


def test_images_are_flattened_channel_major_in_raster_order():
    """Natural order on (2, 2, 2): pixel (c=1, h=0, w=0) is dimension 4, so it conditions dimensions 5..7 only."""
    model = MADE((2, 2, 2), 2, hidden=[16])
    x = torch.zeros(1, 2, 2, 2)
    changed = x.clone()
    changed[0, 1, 0, 0] = 1
    differs = (model.conditionals(changed) != model.conditionals(x)).any(dim=-1)[0]
    assert differs.tolist() == [False] * 5 + [True] * 3


# -- sampling --------------------------------------------------------------------------------------------------------
def test_sample_frequencies_match_exact_probabilities():
    model = MADE((3,), 3, hidden=[16, 16], order="random", seed=1)
    randomise(model)
    cells = all_configurations((3,), 3)
    with torch.no_grad():
        probabilities = model.log_prob(cells).exp().double()
    torch.manual_seed(1)
    n = 20000
    samples = model.sample(n)
    counts = (samples[:, None, :] == cells[None]).all(dim=-1).sum(dim=0).double()
    assert counts.sum() == n
    assert stats.chisquare(counts, n * probabilities / probabilities.sum()).pvalue > 1e-3
    assert stats.chisquare(counts).pvalue < 1e-3  # the model is far from uniform, so the test has power


def test_continuous_samples_standardise_to_normal_noise():
    """For x ~ model, every z_i = (x_i − μ_i(x_<i)) / σ_i(x_<i) is exactly N(0, 1)."""
    model = MADE((3,), hidden=[32, 32], order="random", seed=4)
    randomise(model)
    torch.manual_seed(4)
    x = model.sample(5000)
    with torch.no_grad():
        mean, log_scale = model.conditionals(x).unbind(-1)
    z = (x - mean) / log_scale.exp()
    for i in range(3):
        assert stats.kstest(z[:, i].numpy(), "norm").pvalue > 1e-3
    assert stats.kstest(x[:, 0].numpy(), "norm").pvalue < 1e-3  # while x itself is not standard normal


def test_sampling_follows_torch_global_seed_and_the_data_convention():
    model = MADE((1, 2, 3), 4, hidden=[16], order="random")
    torch.manual_seed(7)
    first = model.sample(10)
    torch.manual_seed(7)
    assert torch.equal(model.sample(10), first)
    assert first.shape == (10, 1, 2, 3) and first.dtype == torch.float32
    model.check(first)


# -- protocol and errors ---------------------------------------------------------------------------------------------
def test_loss_reports_nats_per_example_and_bits_per_dimension():
    model = MADE((1, 2, 2), 2, hidden=[8])
    torch.manual_seed(0)
    x = torch.randint(0, 2, (5, 1, 2, 2)).float()
    losses = model.loss(x)
    torch.testing.assert_close(losses["loss"], -model.log_prob(x).mean())
    torch.testing.assert_close(losses["bpd"], losses["loss"] / (4 * math.log(2)))


def test_model_rebuilt_from_config_has_the_same_masks():
    model = MADE((4,), 3, hidden=[8, 8], order="random", seed=9)
    rebuilt = MADE(**model.config)
    assert rebuilt.config == model.config and model.config["hidden"] == [8, 8]
    assert torch.equal(rebuilt.net.order, model.net.order)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.net.masks, model.net.masks))


def test_default_input_encoding_depends_on_levels():
    assert MADE((2,), 64, hidden=[4]).input_encoding == "one_hot"
    assert MADE((2,), 2, hidden=[4]).input_encoding == "scaled"
    assert MADE((2,), 65, hidden=[4]).input_encoding == "scaled"
    assert MADE((2,), hidden=[4]).input_encoding is None


@pytest.mark.parametrize("x, match", [
    (torch.zeros(2, 3), "shape"),
    (torch.zeros(2, 2, 2), "shape"),
    (torch.tensor([[0.0, float("nan")]]), "NaN"),
    (torch.tensor([[0.0, 3.0]]), "0..2"),
    (torch.tensor([[0.0, -1.0]]), "0..2"),
    (torch.tensor([[0.5, 1.0]]), "fractions"),
    (torch.tensor([[0, 1]]), "floating-point"),
])
def test_bad_data_is_refused(x, match):
    model = MADE((2,), 3, hidden=[4])
    with pytest.raises(ValueError, match=match):
        model.log_prob(x)
    with pytest.raises(ValueError, match=match):
        model.loss(x)


@pytest.mark.parametrize("arguments, match", [
    ({"shape": (2,), "levels": 1}, "levels"),
    ({"shape": (0,), "levels": 2}, "shape"),
    ({"shape": (2,), "levels": 3, "input_encoding": "binary"}, "input_encoding"),
    ({"shape": (2,), "input_encoding": "one_hot"}, "discrete"),
    ({"shape": (2,), "order": "backwards"}, "order"),
])
def test_bad_arguments_are_refused(arguments, match):
    with pytest.raises(ValueError, match=match):
        MADE(hidden=[4], **arguments)


def test_sample_count_must_be_positive():
    with pytest.raises(ValueError, match="number of samples must be an integer of at least 1"):
        MADE((2,), hidden=[4]).sample(0)


# -- learning --------------------------------------------------------------------------------------------------------
def test_short_training_learns_the_dependence_between_dimensions():
    """Seminar-2-like 2D table: x_0 uniform on 12 values, x_1 = x_0 + e mod 12 with e in {-1, 0, 1} w.p. 1/4, 1/2, 1/4.

    Entropy H = log 12 + 1.5 log 2 ≈ 3.525 nats; the best model that ignores the dependence (product of the uniform
    marginals) has 2 log 12 ≈ 4.970. A test NLL under H + 0.1 is reachable only by modelling p(x_1 | x_0).
    """
    torch.manual_seed(0)
    levels = 12

    def draw(n: int) -> torch.Tensor:
        first = torch.randint(0, levels, (n,))
        noise = torch.multinomial(torch.tensor([0.25, 0.5, 0.25]), n, replacement=True) - 1
        return torch.stack([first, (first + noise) % levels], dim=1).float()
    train, test = draw(4000), draw(1000)
    entropy = math.log(levels) + 1.5 * math.log(2)
    model = MADE((2,), levels, hidden=[32, 32])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        batch = train[torch.randint(0, len(train), (256,))]
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        test_nll = model.loss(test)["loss"].item()
    assert test_nll < entropy + 0.1


def test_a_very_large_made_warns_and_says_how_to_shrink_it():
    with pytest.warns(UserWarning, match="bits=4"):
        MADE((1, 28, 28), 256, hidden=[128])  # 784 x 256 categorical outputs: about 26M parameters
