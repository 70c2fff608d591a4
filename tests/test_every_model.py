"""Properties every registered model must have, checked on a tiny model of each: one loss step reaches every
parameter (an unused parameter is dead weight, and Lightning's default DDP strategy refuses to train it)."""
import pytest
import torch

import dgm
from dgm.data.base import Data
from dgm.api import model_class
from dgm.registry import accepts

# the tiny data sets a model is tried on, in order: the first whose shape and levels it accepts
CANDIDATES = [Data("vectors", torch.randn(64, 2), torch.randn(16, 2)),
              Data("binary-images", torch.randint(0, 2, (64, 1, 4, 4)).float(),
                   torch.randint(0, 2, (16, 1, 4, 4)).float(), levels=2),
              Data("sequences", torch.randint(0, 256, (64, 1, 16)).float(), torch.randint(0, 256, (16, 1, 16)).float(),
                   levels=256)]


def tiny(name: str, **options) -> tuple[dgm.GenerativeModel, Data]:
    for data in CANDIDATES:
        try:
            return dgm.create(name, data=data, **options), data
        except ValueError:
            continue
    raise AssertionError(f"{name} accepts none of the tiny data sets")


CASES = [(name, False) for name in dgm.list_models()] + [
    (name, True) for name in dgm.list_models() if accepts(model_class(name), "n_classes")]


@pytest.mark.parametrize("name, conditional", CASES,
                         ids=[f"{name}{'-labels' if conditional else ''}" for name, conditional in CASES])
def test_one_loss_step_reaches_every_parameter(name, conditional):
    torch.manual_seed(0)
    model, data = tiny(name, **({"n_classes": 3} if conditional else {}))
    condition = {"labels": torch.arange(8) % 3} if conditional else {}
    model.train()
    loss = model.loss(data.train[:8], **condition)["loss"]
    if not list(model.parameters()):  # a model that updates itself (EM) has nothing for a gradient to reach
        return
    loss.backward()
    unused = [key for key, parameter in model.named_parameters() if parameter.grad is None]
    assert not unused, f"{name}: parameters without a gradient: {unused}"
