"""VQ-VAE: nearest codes, the straight-through gradient, the EMA codebook and dead-code restarts against their
formulas, perplexity, the two-stage schedule, the bound against the exact marginal, sampling and save/load."""
import math

import pytest
import torch

import dgm
from dgm.core import check_data
from dgm.models.latent.quantize import VectorQuantizer, perplexity


def _tiny(**options) -> dgm.GenerativeModel:
    torch.manual_seed(0)
    options = {"codes": 4, "code_dim": 2, "widths": [4, 4], "residual_blocks": 1, "prior_filters": 4,
               "prior_layers": 1, "prior_kernel": 3, "autoencoder_steps": 3} | options
    return dgm.create("vqvae", shape=(1, 4, 4), levels=2, **options).double()


def _binary_images(n: int = 16) -> torch.Tensor:
    return torch.randint(0, 2, (n, 1, 4, 4), generator=torch.Generator().manual_seed(1)).double()


def _adam(model) -> dict:
    return {group.name: torch.optim.Adam(group.parameters, lr=1e-2) for group in model.optimizer_groups()}


def _train(model, x: torch.Tensor, steps: range, optimizers: dict) -> None:
    """The trainer's loop: one Adam per group, each yielded update applied before the next is asked for."""
    model.train()
    for step in steps:
        for name, losses in model.training_step(x, step):
            optimizers[name].zero_grad()
            losses["loss"].backward()
            optimizers[name].step()


def _quantizer(codebook: list[list[float]], **options) -> VectorQuantizer:
    quantizer = VectorQuantizer(len(codebook), len(codebook[0]), **options).double()
    quantizer.codebook.data.copy_(torch.tensor(codebook))
    if quantizer.ema:
        quantizer.cluster_sum.copy_(quantizer.codebook)
    return quantizer


def test_nearest_code_is_the_argmin_of_the_distances():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(7, 3).double()
    z_e = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    vectors = z_e.movedim(1, -1).reshape(-1, 3)
    brute_force = ((vectors[:, None, :] - quantizer.codebook[None, :, :]) ** 2).sum(dim=-1)
    torch.testing.assert_close(quantizer.squared_distances(vectors), brute_force)
    assert torch.equal(quantizer.nearest(z_e).flatten(), brute_force.argmin(dim=1))
    assert quantizer.nearest(z_e).shape == (2, 4, 5)


@pytest.mark.parametrize("ema", [True, False])
def test_straight_through_gradient_is_copied_exactly(ema):
    torch.manual_seed(0)
    quantizer = VectorQuantizer(5, 3, ema=ema).double()
    z_e = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    quantized = quantizer(z_e)
    z_q = quantized.z_q
    z_q.retain_grad()
    torch.testing.assert_close(z_q, quantizer.embed(quantized.codes))  # z_q = e_k forward
    decoder_loss = (torch.randn_like(z_q) * z_q).sum() + z_q.pow(3).sum()
    decoder_loss.backward()
    assert torch.equal(z_e.grad, z_q.grad)


def test_codebook_and_commitment_losses_move_what_they_should():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(5, 3, ema=False, commitment=0.25).double()
    z_e = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    quantized = quantizer(z_e)
    e = quantizer.embed(quantized.codes).detach()
    torch.testing.assert_close(quantized.codebook_loss, ((z_e - e) ** 2).sum(dim=(1, 2)))
    torch.testing.assert_close(quantized.commitment_loss, 0.25 * ((z_e - e) ** 2).sum(dim=(1, 2)))
    quantized.codebook_loss.sum().backward(retain_graph=True)
    assert z_e.grad is None and quantizer.codebook.grad.abs().sum() > 0
    quantizer.codebook.grad = None
    quantized.commitment_loss.sum().backward()
    assert quantizer.codebook.grad is None and z_e.grad.abs().sum() > 0


def test_ema_update_follows_equations_6_to_8():
    quantizer = _quantizer([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], decay=0.5, epsilon=1e-5, restart_after=None)
    z_e = torch.tensor([[[1.0, -1.0, 9.0], [0.0, 1.0, 1.0]]], dtype=torch.float64)  # (N=1, D=2, positions=3)
    quantized = quantizer(z_e)
    assert quantized.codes.tolist() == [[0, 0, 1]]
    assert quantized.codebook_loss.abs().sum() == 0  # no codebook loss with moving averages
    quantizer.update(quantized)
    counts = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    sums = torch.tensor([[0.0, 1.0], [9.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    size = 0.5 * torch.ones(3, dtype=torch.float64) + 0.5 * counts
    total_sum = 0.5 * torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64) + 0.5 * sums
    smoothed = (size + 1e-5) / (size.sum() + 3 * 1e-5) * size.sum()
    torch.testing.assert_close(quantizer.cluster_size, size)
    torch.testing.assert_close(quantizer.cluster_sum, total_sum)
    torch.testing.assert_close(quantizer.codebook, total_sum / smoothed[:, None])


@pytest.mark.parametrize("ema", [True, False])
def test_codes_idle_for_restart_after_batches_are_restarted(ema):
    torch.manual_seed(0)
    quantizer = _quantizer([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]], ema=ema, decay=0.9,
                           restart_after=2)
    z_e = torch.randn(3, 2, 5, dtype=torch.float64)  # every vector is nearest to code 0
    quantizer.update(quantizer(z_e))
    assert quantizer.idle_batches.tolist() == [0, 1, 1, 1]
    torch.testing.assert_close(quantizer.codebook[1:], torch.tensor([[50.0, 0.0], [0.0, 50.0], [50.0, 50.0]],
                                                                     dtype=torch.float64), atol=1e-3, rtol=0)
    quantizer.update(quantizer(z_e))
    vectors = z_e.movedim(1, -1).reshape(-1, 2)
    for code in quantizer.codebook[1:]:  # each restarted code is one of the batch's encoder outputs
        assert (vectors == code).all(dim=1).any()
    assert quantizer.idle_batches.tolist() == [0, 0, 0, 0]
    if ema:
        assert torch.equal(quantizer.cluster_size[1:], torch.ones(3, dtype=torch.float64))
        assert torch.equal(quantizer.cluster_sum[1:], quantizer.codebook[1:])


def test_perplexity_counts_the_codes_in_use():
    codes = 6
    assert perplexity(torch.eye(codes)).item() == pytest.approx(codes)
    assert perplexity(torch.eye(codes)[torch.zeros(10, dtype=torch.long)]).item() == pytest.approx(1.0)
    quantizer = _quantizer([[0.0], [1.0], [2.0], [3.0]])
    assert quantizer(torch.tensor([[[0.0, 1.0, 2.0, 3.0]]]).double()).perplexity.item() == pytest.approx(4.0)
    assert quantizer(torch.tensor([[[0.1, -0.2, 0.0, 0.3]]]).double()).perplexity.item() == pytest.approx(1.0)


def test_evaluation_never_moves_the_codebook():
    model, x = _tiny(), _binary_images()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    for mode in (model.eval, model.train):
        mode()
        model.loss(x)
        model.log_prob(x)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_two_stages_train_the_autoencoder_then_the_prior_only():
    model, x = _tiny(autoencoder_steps=3), _binary_images()
    optimizers = _adam(model)

    def unchanged(before: dict, prior: bool) -> list[bool]:
        """For each tensor of the prior (or of the autoencoder, buffers included): is it as it was ``before``?"""
        return [torch.equal(value, before[key]) for key, value in model.state_dict().items()
                if key.startswith("priors.") == prior]

    start = {key: value.clone() for key, value in model.state_dict().items()}
    _train(model, x, range(3), optimizers)
    assert all(unchanged(start, prior=True)) and not all(unchanged(start, prior=False))
    assert not torch.equal(model.quantizers[0].codebook, start["quantizers.0.codebook"])  # moving averages
    middle = {key: value.clone() for key, value in model.state_dict().items()}
    _train(model, x, range(3, 6), optimizers)
    assert all(unchanged(middle, prior=False)) and not all(unchanged(middle, prior=True))


def test_the_schedule_yields_one_group_per_step():
    model, x = _tiny(autoencoder_steps=2), _binary_images()
    groups = [[name for name, _ in model.training_step(x, step)] for step in range(4)]
    assert groups == [["autoencoder"], ["autoencoder"], ["prior"], ["prior"]]
    names = [group.name for group in model.optimizer_groups()]
    parameters = [{id(p) for p in group.parameters} for group in model.optimizer_groups()]
    assert names == ["autoencoder", "prior"] and not parameters[0] & parameters[1]
    assert set.union(*parameters) == {id(p) for p in model.parameters()}


def test_the_gradient_codebook_learns_from_the_codebook_loss():
    model, x = _tiny(ema=False), _binary_images()
    (_, losses), = model.training_step(x, 0)
    assert losses["codebook"] > 0
    losses["loss"].backward()
    assert model.quantizers[0].codebook.grad.abs().sum() > 0


@pytest.mark.parametrize("hierarchy", [1, 2])
def test_the_bound_is_one_term_of_the_exact_marginal(hierarchy):
    """With one code position per level, ``log p(x) = log Σ_k p(x | e_k) p(k)`` is a sum over all codes; the bound
    ``log p(x | z_q) + log p(k(x))`` is the term of the encoder's code, so it lies below."""
    model = dgm.create("vqvae", shape=(1, 2, 2), levels=2, codes=3, code_dim=2, widths=[4, 4], residual_blocks=0,
                       hierarchy=hierarchy, prior_filters=4, prior_layers=1, prior_kernel=3).double().eval()
    x = _binary_images(6)[:, :, :2, :2]
    codes = torch.cartesian_prod(*[torch.arange(3)] * hierarchy).view(-1, hierarchy).double()  # every code map
    maps = [codes[:, level].view(-1, 1, 1, 1) for level in range(hierarchy)]
    with torch.no_grad():
        params = model.decoder_params([q.embed(m[:, 0]) for q, m in zip(model.quantizers, maps)])
        decoder = torch.stack([model.head.log_prob(params, xi.expand(len(codes), 1, 2, 2)) for xi in x], dim=1)
        log_joint = decoder + model.prior_log_prob(maps).unsqueeze(1)  # (codes, N)
        exact = torch.logsumexp(log_joint, dim=0)
        bound = model.log_prob(x)
        chosen = (model.latent_codes(x).flatten(1).long() * torch.tensor([3 ** (hierarchy - 1 - level)
                                                                          for level in range(hierarchy)])).sum(1)
    assert (bound <= exact + 1e-12).all()
    torch.testing.assert_close(bound, log_joint[chosen, torch.arange(len(x))])
    assert math.isclose(torch.logsumexp(model.prior_log_prob(maps), 0).item(), 0.0, abs_tol=1e-9)


def test_loss_reports_the_negative_bound_and_its_parts():
    model, x = _tiny().eval(), _binary_images()
    losses = model.loss(x)
    torch.testing.assert_close(losses["loss"], -model.log_prob(x).mean())
    torch.testing.assert_close(losses["loss"], losses["reconstruction"] + losses["prior_nll"])
    torch.testing.assert_close(losses["bpd"], losses["reconstruction"] / (16 * math.log(2)))
    assert {"commitment", "perplexity"} <= set(losses)


@pytest.mark.parametrize("hierarchy", [1, 2])
def test_a_trained_model_samples_images_and_survives_save_and_load(hierarchy, tmp_path):
    model, x = _tiny(hierarchy=hierarchy), _binary_images()
    _train(model, x, range(6), _adam(model))
    model, x = model.float().eval(), x.float()  # dgm.load builds the model in float32
    for decoder_noise in (True, False):
        samples = model.sample(5, decoder_noise=decoder_noise)
        assert check_data(samples, (1, 4, 4), 2).shape == (5, 1, 4, 4)
    model.save(tmp_path)
    loaded = dgm.load(tmp_path)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.latent_codes(x), model.latent_codes(x))


@pytest.mark.parametrize("hierarchy", [1, 2])
def test_decode_reads_the_codes_of_latent_codes(hierarchy):
    model = dgm.create("vqvae", shape=(1, 6, 6), levels=2, codes=4, code_dim=2, widths=[4, 4], residual_blocks=0,
                       hierarchy=hierarchy, prior_filters=4, prior_layers=1, prior_kernel=3).double().eval()
    x = torch.randint(0, 2, (5, 1, 6, 6), generator=torch.Generator().manual_seed(0)).double()
    codes = model.latent_codes(x)
    assert codes.shape == (5, hierarchy, 3, 3)
    quantized = model.quantize(x)
    expected = model.head.mean(model.decoder_params([level.z_q for level in quantized])).round()
    assert torch.equal(model.decode(codes, decoder_noise=False), expected)
    with pytest.raises(ValueError, match="codes"):
        model.decode(codes + 0.5)
    diagnostics = model.latent_diagnostics(x)
    names = ["top", "bottom"] if hierarchy == 2 else ["codes"]
    assert diagnostics["codebook_size"] == 4
    for name, level in zip(names, quantized):
        assert diagnostics[f"{name}_used"] == len(level.codes.unique())
        assert 1 <= diagnostics[f"{name}_perplexity"] <= diagnostics[f"{name}_used"] + 1e-9


def test_every_parameter_of_the_two_level_model_gets_a_gradient():
    model = _tiny(hierarchy=2)
    model.loss(_binary_images())["loss"].backward()
    assert [key for key, parameter in model.named_parameters() if parameter.grad is None] == []


def test_vectors_are_refused():
    with pytest.raises(ValueError, match="images"):
        dgm.create("vqvae", shape=(2,), levels=2)
    with pytest.raises(ValueError, match="hierarchy"):
        dgm.create("vqvae", shape=(1, 4, 4), levels=2, hierarchy=3)
