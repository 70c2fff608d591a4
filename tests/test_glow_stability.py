"""Glow's scales have no clamp that binds: its learned prior (the split prior, Kingma & Dhariwal, 2018, §3.4) has an
unbounded log-scale, and its couplings (``OneSidedAffine``) bound expansion only, so training cannot drive them into
a clamp whose gradient vanishes.

The ``glow-mnist`` run that reported ``NLL ≤ 6504 nats`` (11.97 bits/dim) against a validation curve at 1.498
bits/dim had RealNVP's two-sided soft clamp ``|log scale| ≤ 2`` in both places: the factored-out half of 8-bit MNIST
is mostly the dequantization noise of background pixels, narrower than ``σ = e^−2``, and the level's last coupling
wanted to contract further than ``e^−2``. The clamps bound, their gradients vanished, Adam drove the raw log-scales to
15–29 and grew the networks' weights, and on some noise draws of test image 9127 the second level's couplings, fed an
input out of their range, amplified it step by step (largest activation 26 → 279 → 838 → 1.9e3 → 7.1e3): ``|z|²/2``
up to 1.1e8 nats (``docs/flows-images.md``). These tests rebuild the condition on a tiny Glow in a few seconds; the
first two fail on the code before the fix (prior's log-det 15.8 instead of 40; raw log-scales run to 38).
"""
import math

import pytest
import torch

import dgm
from dgm.flows.transforms import OneSidedAffine

SHAPE = (1, 4, 4)


def _tiny_glow() -> dgm.core.GenerativeModel:
    torch.manual_seed(0)
    return dgm.create("glow", shape=SHAPE, levels=256, scales=2, steps=2, channels=8)


def _learned_prior(model):
    """The coupling ``z₂ ↦ (z₂ − μ(z₁)) / σ(z₁)`` before the first level's split."""
    return model.flow.bijections[1].squeezed.bijections[-1]


def _raw_log_scales(model, images: torch.Tensor) -> torch.Tensor:
    """The prior network's log-scale outputs on dequantized ``images``."""
    outputs = []
    hook = _learned_prior(model).register_forward_hook(
        lambda layer, inputs, _: outputs.append(layer._parameters_of_transformed(inputs[0], None)[:, 0]))
    with torch.no_grad():
        model.log_prob(images)
    hook.remove()
    return outputs[0]


def _background_images() -> torch.Tensor:
    """256 black 4x4 images, a quarter with a white 2x2 square: most pixels carry only dequantization noise."""
    images = torch.zeros(256, *SHAPE)
    images[:64, 0, 1:3, 1:3] = 255.0
    return images


def test_the_learned_prior_takes_a_log_scale_beyond_the_couplings_clamp_exactly():
    """A prior network that asks for ``log(1/σ) = 5`` gets it (the clamp would give 2 tanh(2.5) = 1.97), and the
    coupling stays invertible with the matching log-determinant."""
    prior = _learned_prior(_tiny_glow())
    last = prior.conditioner[-1]
    channels = last.bias.numel() // 2
    with torch.no_grad():
        last.bias[:channels] = 5.0
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64)  # the first level squeezes (1, 4, 4) to (4, 2, 2)
    prior.double()
    y, log_det = prior(x)
    transformed = int((prior.mask == 0).sum())
    assert torch.allclose(log_det, torch.full((3,), 5.0 * transformed, dtype=torch.float64))
    x_again, inverse_log_det = prior.inverse(y)
    assert torch.allclose(x_again, x, atol=1e-10) and torch.allclose(inverse_log_det, -log_det)


def test_training_on_background_noise_settles_the_prior_instead_of_driving_it_on():
    """300 Adam steps on mostly black images: the prior's log-scales settle near their optimum (measured 3.4 mean,
    4.4 at most) where the clamped prior's raw values ran on to 38; and many noise draws of each image stay within
    a few nats of its median, no draw exploding."""
    model = _tiny_glow()
    images = _background_images()
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(300):
        loss = model.loss(images[torch.randint(0, len(images), (32,), generator=generator)])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert _raw_log_scales(model, images).abs().max() < 10
    with torch.no_grad():
        for image in (images[:1], images[-1:]):  # the square and the plain black image
            nll = -model.log_prob(image.expand(2048, *SHAPE))
            assert torch.isfinite(nll).all() and nll.max() - nll.median() < 30


def test_glows_coupling_law_is_the_identity_at_zero_contracts_without_bound_and_expands_at_most_e_c():
    """``OneSidedAffine``: ``e^−s = e^−c + (1 − e^−c) e^−r``; its log-derivative is autograd's, its inverse undoes it,
    and a raw log-scale of −10 contracts by ``e^−9.85`` where the two-sided soft clamp stopped at ``e^−2``."""
    law = OneSidedAffine(max_log_scale=2.0)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    raw = torch.tensor([0.0, -10.0, -3.0, 1.0, 30.0], dtype=torch.float64).expand(4, 5)
    params = torch.stack([raw, torch.randn(4, 5, dtype=torch.float64)], dim=1)
    y, log_derivative = law(x, params)
    assert torch.allclose(log_derivative[:, 0], torch.zeros(4, dtype=torch.float64))
    assert log_derivative[0, 1].item() == pytest.approx(-math.log(math.exp(-2) + (1 - math.exp(-2)) * math.exp(10)))
    assert log_derivative[0, 4].item() == pytest.approx(2.0) and log_derivative.max() <= 2.0
    slope = torch.autograd.grad(y.sum(), x)[0]
    assert torch.allclose(slope.log(), log_derivative)
    x_again, inverse_log_derivative = law.inverse(y, params)
    assert torch.allclose(x_again, x) and torch.allclose(inverse_log_derivative, -log_derivative)
