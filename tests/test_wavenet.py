"""WaveNet: exact normalisation, causality and receptive field, cached sampling equal to naive; waveform data."""
import itertools
import math

import pytest
import torch

import dgm
from dgm.data import load
from dgm.data.waveforms import mu_law_decode, mu_law_encode
from dgm.nn.causal import CausalConv1d


def tiny_wavenet(**options):
    torch.manual_seed(0)
    arguments = dict(shape=(1, 3), levels=4, channels=4, skip_channels=4, layers=2, stacks=1) | options
    shape = arguments.pop("shape")
    return dgm.create("wavenet", shape=shape, **arguments).double().eval()


def test_probabilities_of_every_sequence_sum_to_one():
    model = tiny_wavenet()
    sequences = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64).unsqueeze(1)
    assert torch.logsumexp(model.log_prob(sequences), dim=0).exp().item() == pytest.approx(1, abs=1e-5)


def test_conditional_probabilities_of_every_sequence_sum_to_one_for_each_label():
    model = tiny_wavenet(shape=(3,), n_classes=2)
    sequences = torch.tensor(list(itertools.product(range(4), repeat=3)), dtype=torch.float64)
    for label in (0, 1):
        log_p = model.log_prob(sequences, labels=torch.full((64,), label))
        assert torch.logsumexp(log_p, dim=0).exp().item() == pytest.approx(1, abs=1e-5)


def test_a_step_sees_exactly_its_receptive_field():
    model = tiny_wavenet(shape=(1, 40), levels=8, layers=3, stacks=2)
    field = model.receptive_field
    assert field == 2 + 2 * (1 + 2 + 4)
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, 8, (1, 40), generator=generator).double()
    base = model.logits(x)
    for t in range(40):
        changed = x.clone()
        changed[0, t] = (changed[0, t] + 1) % 8
        moved = (model.logits(changed) - base).abs().amax(dim=(0, 1)) > 1e-12
        # x_t reaches the next `field` steps, never itself nor an earlier step
        assert torch.equal(torch.nonzero(moved).flatten(), torch.arange(t + 1, min(t + field, 39) + 1))


def test_cached_sampling_equals_naive_sampling():
    model = tiny_wavenet(shape=(1, 50), levels=16, layers=3, stacks=2, kernel_size=3, n_classes=3).float()
    labels = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(5)
    cached = model.sample(4, labels=labels)
    torch.manual_seed(5)
    naive = model.sample(4, labels=labels, cached=False)
    assert torch.equal(cached, naive)
    assert cached.shape == (4, 1, 50) and len(cached.unique()) > 4


def test_loss_and_errors():
    model = tiny_wavenet()
    x = torch.tensor([[[0.0, 1.0, 3.0]]])
    assert model.loss(x)["loss"].item() == pytest.approx(-model.log_prob(x).item())
    with pytest.raises(ValueError, match="unconditional"):
        model.log_prob(x, labels=torch.tensor([0]))
    with pytest.raises(ValueError, match="pass labels"):
        tiny_wavenet(n_classes=2).log_prob(x)
    with pytest.raises(ValueError, match="sequences of shape"):
        dgm.create("wavenet", shape=(2, 8), levels=4)
    with pytest.raises(ValueError, match="0..3"):
        model.log_prob(torch.tensor([[[0.0, 1.0, 4.0]]]))


def test_causal_conv_step_is_the_last_output():
    torch.manual_seed(0)
    conv = CausalConv1d(3, 5, kernel_size=3, dilation=4).double()
    x = torch.randn(2, 3, 20, dtype=torch.float64)
    full = conv(x)
    assert torch.allclose(conv.step(x[..., -conv.history - 1:]), full[..., -1:])
    assert torch.allclose(conv(x[..., :7]), full[..., :7])  # the future never reaches the past


def test_mu_law_round_trip_and_data():
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    q = mu_law_encode(x)
    assert q.min() == 0 and q.max() == 255 and torch.equal(q, q.round())
    assert torch.equal(mu_law_encode(mu_law_decode(torch.arange(256.0, dtype=torch.float64))),
                       torch.arange(256.0, dtype=torch.float64))
    data = load("waveforms", length=64, train_size=20, test_size=10)
    assert data.shape == (1, 64) and data.levels == 256 and data.train_labels.max() <= 2
    assert torch.equal(data.train, load("waveforms", length=64, train_size=20, test_size=10).train)


@pytest.mark.slow
def test_mnist1d_data():
    data = load("mnist1d")
    assert data.shape == (1, 40) and len(data.train) == 4000 and len(data.test) == 1000 and data.levels == 256


def test_sequence_runs_get_a_picture_of_data_beside_samples(tmp_path):
    from dgm import plots
    from dgm.runs import is_sequence, save_samples_picture
    data = load("waveforms", length=32, train_size=8, test_size=4)
    assert is_sequence(data) and not is_sequence(load("histogram-1d"))
    samples = tiny_wavenet(shape=(1, 32), levels=256).float().sample(3)
    figure = plots._sequences_figure(samples, reference=data.test, count=3)
    assert len(figure.axes) == 6 and len(figure.axes[0].lines[0].get_xdata()) == 32
    assert save_samples_picture(samples, data, tmp_path / "samples.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        plots.sequences(torch.zeros(2, 2, 5), tmp_path / "bad.png")


@pytest.mark.slow
def test_short_training_learns_the_waveforms(tmp_path):
    """400 steps of the recipe's WaveNet on 64-step waveforms: far below the i.i.d. marginal of the values
    (about 7.6 bits per step), and samples drawn at the end."""
    from dgm.recipes import load_recipe
    from dgm.runs import write_pictures
    from dgm.training import fit, seed_everything
    data = load("waveforms", length=64, train_size=4000, test_size=500)
    seed_everything(0)
    model = dgm.create("wavenet", data=data, **load_recipe("wavenet-waveforms")["model_options"])
    run = fit(model, data, tmp_path / "run", max_steps=400, batch_size=32, lr=3e-3, progress=False)
    with torch.no_grad():
        bits_per_step = -run.model.log_prob(data.test).mean().item() / (64 * math.log(2))
    assert bits_per_step < 5.0  # 4.67 measured
    write_pictures(run.model, data, run.directory)
    assert (tmp_path / "run" / "samples.png").exists()
