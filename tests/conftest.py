"""Shared fixtures: a tiny exact model whose loss draws noise, and tiny data, for trainer tests."""
import math

import pytest
import torch
from torch import nn

from dgm.core import GenerativeModel
from dgm.data.base import Data
from dgm.registry import MODELS, register_model


class NoisyGaussian(GenerativeModel):
    """A diagonal Gaussian fitted to noise-jittered data: the loss draws random numbers, so an exact resume needs
    the generator state restored, and the result depends on the order of batches."""

    likelihood = "exact"

    def __init__(self, shape: tuple[int, ...], jitter: float = 0.1):
        super().__init__()
        self.jitter = jitter
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))

    def log_prob(self, x):
        self.check(x)
        z = (x - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)

    def loss(self, x):
        nll = -self.log_prob(x + self.jitter * torch.randn_like(x)).mean()
        return {"loss": nll}

    def sample(self, n):
        return self.mean + torch.exp(self.log_std) * torch.randn(n, *self.mean.shape)


# tiny models: one thread is faster than two, and keeps the suite fast when the two cores are shared
torch.set_num_threads(1)

if "test-gaussian" not in MODELS:
    register_model("test-gaussian", "diagonal Gaussian used by the tests")(NoisyGaussian)


@pytest.fixture
def gaussian_data():
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(512, 2, generator=generator) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    test = torch.randn(256, 2, generator=generator) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    return Data("gaussian-test", train, test)
