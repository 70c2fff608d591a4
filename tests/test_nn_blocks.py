"""Shared blocks of dgm.nn: time embedding, attention, resampling and residual blocks, checked against closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F

from dgm.nn.attention import SelfAttention2d, dot_product_attention
from dgm.nn.blocks import Downsample, PreActivationResidualBlock, Upsample
from dgm.nn.embedding import TimeEmbedding, sinusoidal_embedding


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn from N(0, 0.3²), the zero-initialised ones included."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.3)
    return module


# -- sinusoidal time embedding ----------------------------------------------------------------------------------------

def test_sinusoidal_embedding_at_known_times():
    """ω = (1, 10000^(-1/2)) for d = 4: e(t) = (sin t, sin t/100, cos t, cos t/100)."""
    t = torch.tensor([0.0, 1.0, math.pi / 2, 100.0], dtype=torch.float64)
    expected = torch.stack([t.sin(), (t / 100).sin(), t.cos(), (t / 100).cos()], dim=1)
    torch.testing.assert_close(sinusoidal_embedding(t, 4), expected)
    at_zero = torch.tensor([[0.0, 0, 0, 1, 1, 1]], dtype=torch.float64)  # sin 0 = 0, cos 0 = 1 at every frequency
    torch.testing.assert_close(sinusoidal_embedding(t[:1], 6), at_zero)


def test_sinusoidal_embedding_is_bounded_with_constant_norm_and_distinct_for_distinct_steps():
    steps = torch.arange(1000)
    embedding = sinusoidal_embedding(steps, 32)
    assert embedding.abs().max() <= 1
    torch.testing.assert_close(embedding.norm(dim=1), torch.full((1000,), 4.0))  # √(d/2): one unit circle per pair
    distances = torch.cdist(embedding, embedding) + torch.eye(1000) * 1e9
    assert distances.min() > 1e-2


def test_sinusoidal_embedding_refuses_odd_dimensions_and_time_embedding_maps_to_out_dim():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.zeros(3), 5)
    assert TimeEmbedding(8)(torch.arange(3)).shape == (3, 32)
    assert TimeEmbedding(8, out_dim=10)(torch.tensor([0.5])).shape == (1, 10)


# -- attention --------------------------------------------------------------------------------------------------------

def reference_attention(q, k, v, causal=False):
    """softmax(q kᵀ / √d_k) v, one head, position by position (q: (L, d_k), k: (S, d_k), v: (S, d_v))."""
    rows = []
    for i in range(len(q)):
        seen = i + 1 if causal else len(k)
        weights = torch.softmax(q[i] @ k[:seen].T / k.shape[1] ** 0.5, dim=0)
        rows.append(weights @ v[:seen])
    return torch.stack(rows)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("key_dim, value_dim", [(4, 4), (3, 5), (6, 2)])
def test_attention_core_equals_softmax_per_head(causal, key_dim, value_dim):
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 7, key_dim, dtype=torch.float64), torch.randn(2, 3, 7, key_dim, dtype=torch.float64)
    v = torch.randn(2, 3, 7, value_dim, dtype=torch.float64)
    out = dot_product_attention(q, k, v, causal)
    for n in range(2):
        for head in range(3):
            torch.testing.assert_close(out[n, head], reference_attention(q[n, head], k[n, head], v[n, head], causal))


@pytest.mark.parametrize("heads", [1, 2])
def test_self_attention_2d_equals_hand_written_multi_head_attention(heads):
    attention = randomise(SelfAttention2d(4, heads=heads, groups=2)).double()
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    positions = attention.norm(x).flatten(2).transpose(1, 2)  # (N, L, C)
    w, b = attention.query_key_value.weight, attention.query_key_value.bias
    q, k, v = (positions @ w[part * 4:(part + 1) * 4].T + b[part * 4:(part + 1) * 4] for part in range(3))
    d = 4 // heads
    for n in range(2):
        concatenated = torch.cat([reference_attention(q[n, :, h * d:(h + 1) * d], k[n, :, h * d:(h + 1) * d],
                                                      v[n, :, h * d:(h + 1) * d]) for h in range(heads)], dim=1)
        expected = x[n] + attention.output(concatenated).T.reshape(4, 3, 5)
        torch.testing.assert_close(attention(x)[n], expected)


def test_self_attention_2d_is_permutation_equivariant_and_starts_as_the_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    assert torch.equal(SelfAttention2d(4, heads=2, groups=2).double()(x), x)  # zero output projection
    attention = randomise(SelfAttention2d(4, heads=2, groups=2)).double()
    permutation = torch.randperm(15)
    permuted = x.flatten(2)[:, :, permutation].view_as(x)
    torch.testing.assert_close(attention(permuted), attention(x).flatten(2)[:, :, permutation].view_as(x))


# -- resampling -------------------------------------------------------------------------------------------------------

def test_down_and_upsampling_shapes():
    x = torch.randn(2, 3, 8, 7)
    assert Downsample(3, 5)(x).shape == (2, 5, 4, 4)
    assert Downsample(3)(x).shape == (2, 3, 4, 4)
    assert Upsample(3, 5)(x).shape == (2, 5, 16, 14)


def test_downsample_is_the_full_convolution_at_even_positions_and_upsample_convolves_repeated_pixels():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    down, up = Downsample(3, 4).double(), Upsample(3, 4).double()
    torch.testing.assert_close(down(x), F.conv2d(x, down.weight, down.bias, padding=1)[:, :, ::2, ::2])
    repeated = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(up(x), F.conv2d(repeated, up.conv.weight, up.conv.bias, padding=1))


def test_upsample_of_downsample_keeps_a_constant_image_constant_away_from_the_border():
    """Inside, a constant c gives d = c·Σw_down + b_down, then Σw_up·d + b_up; only the zero padding (the outer rows
    and columns that reach it) differs."""
    torch.manual_seed(0)
    down, up = Downsample(3, 4).double(), Upsample(4, 2).double()
    out = up(down(torch.full((1, 3, 16, 16), 0.7, dtype=torch.float64)))
    coarse = 0.7 * down.weight.sum(dim=(1, 2, 3)) + down.bias
    expected = torch.einsum("oikl,i->o", up.conv.weight, coarse) + up.conv.bias
    torch.testing.assert_close(out[0, :, 3:15, 3:15], expected[:, None, None].expand(2, 12, 12))


# -- residual block ---------------------------------------------------------------------------------------------------

def test_residual_block_starts_as_its_shortcut():
    """The last convolution starts at zero: the identity, or the 1x1 shortcut where the channels change."""
    torch.manual_seed(0)
    x, embedding = torch.randn(2, 4, 5, 5), torch.randn(2, 6)
    assert torch.equal(PreActivationResidualBlock(4, embedding_dim=6, groups=2)(x, embedding), x)
    block = PreActivationResidualBlock(4, 8, groups=2)
    torch.testing.assert_close(block(x), block.shortcut(x))


def test_residual_block_adds_the_embedding_as_a_bias_of_its_first_convolution():
    """x + residual, with W_e·SiLU(e) entering every pixel of each channel like a bias of conv₁."""
    block = randomise(PreActivationResidualBlock(4, 8, embedding_dim=6, groups=2)).double()
    x, embedding = torch.randn(1, 4, 5, 5, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    unconditioned = randomise(PreActivationResidualBlock(4, 8, groups=2)).double()
    unconditioned.load_state_dict(block.state_dict(), strict=False)
    with torch.no_grad():
        unconditioned.inner[2].bias += block.embedding(embedding)[0]
    torch.testing.assert_close(block(x, embedding), unconditioned(x))
    with pytest.raises(ValueError, match="embedding"):
        block(x)


def test_group_norm_needs_channels_divisible_by_groups():
    with pytest.raises(ValueError, match="multiple of groups"):
        PreActivationResidualBlock(12)


# -- MaxMin -----------------------------------------------------------------------------------------------------------
def test_maxmin_sorts_pairs_and_its_jacobian_is_a_permutation():
    from dgm.nn.mlp import MaxMin
    activation = MaxMin()
    assert activation(torch.tensor([[3.0, 1.0, -2.0, 5.0]])).tolist() == [[3.0, 5.0, 1.0, -2.0]]
    torch.manual_seed(0)
    x = torch.randn(6)
    jacobian = torch.autograd.functional.jacobian(activation, x)
    assert set(jacobian.unique().tolist()) == {0.0, 1.0}
    assert (jacobian.sum(0) == 1).all() and (jacobian.sum(1) == 1).all()
    with pytest.raises(ValueError, match="even number, got 3"):
        activation(torch.zeros(2, 3))
