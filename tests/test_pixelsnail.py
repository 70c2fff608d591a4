"""PixelSNAIL: strictly causal attention, exact normalisation on tiny spaces, causality, sampling."""
import pytest
import torch

import dgm
from ar_checks import dependency_violations, total_probability
from dgm.nn.causal import CausalAttention


def pixelsnail(shape, levels, **options):
    torch.manual_seed(0)
    arguments = dict(filters=6, blocks=2, residual_blocks=1, key_dim=4, value_channels=6, components=2) | options
    return dgm.create("pixelsnail", shape=shape, levels=levels, **arguments).double().eval()


def test_attention_sees_strictly_earlier_positions():
    torch.manual_seed(0)
    attention = CausalAttention(3, 5, key_dim=4, value_channels=6, heads=2).double()
    queries = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    keys = torch.randn(1, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    out = attention(queries, keys)
    assert out.shape == (1, 6, 3, 4)
    assert torch.equal(out[:, :, 0, 0], torch.zeros(1, 6, dtype=torch.float64))  # nothing precedes the first
    for position in range(12):
        gradient, = torch.autograd.grad(out.flatten(2)[:, :, position].sum(), keys, retain_graph=True)
        reached = gradient.abs().sum(dim=(0, 1)).flatten() > 0
        assert torch.equal(reached, torch.arange(12) < position)


@pytest.mark.parametrize("key_dim, value_channels, heads", [(3, 3, 1), (2, 5, 1), (6, 2, 2), (4, 8, 2)])
def test_attention_equals_masked_softmax_with_a_null_slot(key_dim, value_channels, heads):
    """Per head, with the keys' own scale 1/√d_k also where the narrower of keys and values is padded."""
    torch.manual_seed(1)
    attention = CausalAttention(2, 2, key_dim=key_dim, value_channels=value_channels, heads=heads).double()
    x = torch.randn(1, 2, 5, dtype=torch.float64)
    q, k, v = attention.query(x[0].T), attention.key(x[0].T), attention.value(x[0].T)
    d_k, d_v = key_dim // heads, value_channels // heads
    expected = torch.zeros(5, value_channels, dtype=torch.float64)
    for h in range(heads):
        keys, values = k[:, h * d_k:(h + 1) * d_k], v[:, h * d_v:(h + 1) * d_v]
        scores = q[:, h * d_k:(h + 1) * d_k] @ keys.T / d_k ** 0.5
        for i in range(5):  # softmax over [null slot (score 0, value 0), keys j < i]
            weights = torch.softmax(torch.cat([torch.zeros(1, dtype=torch.float64), scores[i, :i]]), dim=0)
            expected[i, h * d_v:(h + 1) * d_v] = weights[1:] @ values[:i]
    torch.testing.assert_close(attention(x, x)[0].T, expected)


@pytest.mark.parametrize("shape, levels", [((1, 2, 2), 2), ((1, 1, 3), 4), ((3, 1, 2), 2)])
def test_probabilities_of_all_images_sum_to_one(shape, levels):
    assert total_probability(pixelsnail(shape, levels), shape, levels) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape, levels", [((1, 5, 4), 2), ((3, 4, 3), 256)])
def test_no_parameter_depends_on_the_pixel_itself_or_a_later_one(shape, levels):
    model = pixelsnail(shape, levels)
    x = torch.randint(0, levels, (1, *shape)).double()
    assert len(dependency_violations(model, x)) == 0


def test_a_pixel_sees_every_earlier_pixel():
    model = pixelsnail((1, 4, 4), 2, residual_blocks=0)  # attention alone must reach the whole past
    x = torch.randint(0, 2, (1, 1, 4, 4)).double()
    jacobian = torch.autograd.functional.jacobian(lambda inputs: model.network(inputs, None, None),
                                                  model.scaled(x))[0, :, 3, 0, 0]
    seen = jacobian.abs().sum(dim=(0, 1)) > 0
    assert torch.equal(seen, (torch.arange(16) < 12).view(4, 4))


def test_sampling_matches_the_model_distribution():
    model = pixelsnail((1, 1, 3), 2)
    torch.manual_seed(1)
    samples = model.sample(4000).view(-1, 3).long()
    frequencies = torch.bincount(samples[:, 0] * 4 + samples[:, 1] * 2 + samples[:, 2], minlength=8) / 4000
    cells = torch.tensor([[k // 4, k // 2 % 2, k % 2] for k in range(8)], dtype=torch.float64)
    assert (frequencies - model.log_prob(cells.view(8, 1, 1, 3)).exp()).abs().max() < 0.03


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="multiples of heads"):
        pixelsnail((1, 4, 4), 2, heads=3)
    with pytest.raises(ValueError, match="dropout"):
        pixelsnail((1, 4, 4), 2, dropout=-0.1)


def test_row_prefix_sampling_draws_the_naive_samples():
    model = pixelsnail((3, 4, 3), 4)
    torch.manual_seed(3)
    fast = model.sample(4)
    torch.manual_seed(3)
    assert torch.equal(fast, model.sample(4, naive=True))


def test_conditioning_on_a_feature_map_and_a_class():
    shape = (1, 2, 2)
    model = pixelsnail(shape, 2, n_classes=2, condition_shape=[3, 2, 2])
    h = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    for label in range(2):
        assert total_probability(model, shape, 2, labels=torch.tensor([label]), condition=h) == pytest.approx(1.0)
    big = pixelsnail((1, 4, 3), 2, n_classes=2, condition_shape=[3, 4, 3])
    maps = torch.randn(4, 3, 4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    assert len(dependency_violations(big, torch.randint(0, 2, (1, 1, 4, 3)).double(), labels=labels[:1],
                                     condition=maps[:1])) == 0
    torch.manual_seed(3)
    fast = big.sample(4, labels=labels, condition=maps)
    torch.manual_seed(3)
    assert torch.equal(fast, big.sample(4, labels=labels, condition=maps, naive=True))
