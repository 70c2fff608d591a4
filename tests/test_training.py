"""The one trainer: learning, exact resume, EMA, NaN guard, clipping, alternation for GANs, run folder."""
import json
from dataclasses import replace

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

import dgm
from dgm.checkpoint import load_state
from dgm.plots import read_metrics_csv
from dgm.run_folder import RunFolder
from dgm.runs import write_pictures
from dgm.training import TrainingDiverged, fit, seed_everything
from dgm.training.fit import _floating_ema, denormals_flushed, flushes_denormals


def _fit(data, directory, **options):
    seed_everything(0)
    model = dgm.create("test-gaussian", data=data)
    return fit(model, data, directory, batch_size=64, lr=0.05, progress=False, **options)


def test_fit_learns_the_maximum_likelihood_gaussian(tmp_path, gaussian_data):
    run = _fit(gaussian_data, tmp_path / "run", max_epochs=15)
    model = run.model
    assert torch.allclose(model.mean, gaussian_data.train.mean(0), atol=0.1)
    # the loss jitters the data with N(0, 0.1²): the fitted std is that of the jittered data
    expected_std = (gaussian_data.train.var(0) + 0.01).sqrt()
    assert torch.allclose(model.log_std.exp(), expected_std, rtol=0.1)
    assert not (run.directory / "samples.png").exists()  # pictures are the runs module's, not the trainer's
    write_pictures(run.model, gaussian_data, run.directory)
    files = {p.name for p in run.directory.iterdir()}
    assert {"config.json", "model.safetensors", "run.json", "checkpoints", "logs", "samples.png",
            "curves.png"} <= files
    assert (run.directory / "logs" / "csv-0" / "metrics.csv").exists()
    checkpoints = sorted(p.name for p in (run.directory / "checkpoints").iterdir())
    assert checkpoints[0] == "epoch0000.safetensors" and "last.safetensors" in checkpoints
    assert len(checkpoints) == 16
    record = json.loads((run.directory / "run.json").read_text())
    assert record["data"] == "gaussian-test" and record["train"]["lr"] == 0.05 and record["seconds"] > 0
    reloaded = dgm.load(run.directory)
    assert torch.equal(reloaded.mean, model.mean)


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, gaussian_data):
    straight = _fit(gaussian_data, tmp_path / "straight", max_epochs=4, ema_decay=0.9)
    _fit(gaussian_data, tmp_path / "interrupted", max_epochs=2, ema_decay=0.9)
    resumed = _fit(gaussian_data, tmp_path / "interrupted", max_epochs=4, ema_decay=0.9, resume=True)
    for name in ("mean", "log_std"):
        assert torch.equal(getattr(resumed.model, name), getattr(straight.model, name))
    # the logs of both parts are kept, the second continuing the steps of the first
    first, second = (read_metrics_csv(p)["train/loss"][0] for p in RunFolder(tmp_path / "interrupted").csv_logs())
    assert first.max() < second.min()
    # and the trainer states agree too (optimizer moments, step counters)
    a = load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = load_state(tmp_path / "interrupted" / "checkpoints" / "last.safetensors")
    assert a["global_step"] == b["global_step"]
    assert torch.equal(a["optimizer_states"][0]["state"][0]["exp_avg"], b["optimizer_states"][0]["state"][0]["exp_avg"])


def test_resume_from_a_mid_epoch_stop_is_exact_too(tmp_path, gaussian_data):
    # 8 batches per epoch: the first part stops after 13 batches, in the middle of the second epoch
    straight = _fit(gaussian_data, tmp_path / "straight", max_steps=30)
    _fit(gaussian_data, tmp_path / "interrupted", max_steps=13)
    resumed = _fit(gaussian_data, tmp_path / "interrupted", max_steps=30, resume=True)
    for name in ("mean", "log_std"):
        assert torch.equal(getattr(resumed.model, name), getattr(straight.model, name))
    assert load_state(tmp_path / "interrupted" / "checkpoints" / "last.safetensors")["batches_trained"] == 30


def test_a_data_set_that_builds_its_own_batches_trains_and_resumes_exactly(tmp_path, gaussian_data):
    """``train_batch`` gets example indices and may draw noise (as dynamic binarization does)."""
    seen = []

    def jittered(indices):
        seen.append(indices)
        return gaussian_data.train[indices] + 0.5 * torch.randn(len(indices), 2)

    data = replace(gaussian_data, train_batch=jittered)
    straight = _fit(data, tmp_path / "straight", max_steps=20)
    assert all(i.dtype == torch.int64 and len(i) == 64 for i in seen) and len(seen) == 20
    _fit(data, tmp_path / "split", max_steps=11)
    resumed = _fit(data, tmp_path / "split", max_steps=20, resume=True)
    assert torch.equal(resumed.model.log_std, straight.model.log_std)


def test_resume_refuses_to_overwrite_or_invent_a_run(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    with pytest.raises(ValueError, match="already holds a run"):
        _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    with pytest.raises(ValueError, match="cannot resume"):
        _fit(gaussian_data, tmp_path / "absent", max_epochs=1, resume=True)


def test_ema_exports_the_averaged_weights(tmp_path, gaussian_data):
    run = _fit(gaussian_data, tmp_path / "ema", max_epochs=3, ema_decay=0.99)
    plain = _fit(gaussian_data, tmp_path / "plain", max_epochs=3)
    # with decay 0.99 the average still remembers the zero initialisation: it lags behind the raw weights
    assert (run.model.mean - plain.model.mean).abs().max() > 0.05
    exported = load_file(tmp_path / "ema" / "model.safetensors")
    assert torch.equal(exported["mean"], run.model.mean.detach())
    # with decay 0 the average is the current weights
    no_memory = _fit(gaussian_data, tmp_path / "ema0", max_epochs=3, ema_decay=0.0)
    torch.testing.assert_close(no_memory.model.mean, plain.model.mean, atol=1e-6, rtol=0)


class RecordWeights(Callback):
    """The raw (not averaged) ``mean`` after every optimizer step."""

    def __init__(self):
        self.trajectory = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.trajectory.append(module.model.mean.detach().clone())


def test_ema_follows_its_recursion(tmp_path, gaussian_data):
    """average_1 = w_1, average_t = d_t · average_{t-1} + (1 − d_t) · w_t over the raw weights w_t of every step,
    with the warm-up d_t = min(d, t/(t + 9)) (after t − 1 averages)."""
    decay, recorder = 0.9, RecordWeights()
    run = _fit(gaussian_data, tmp_path / "ema", max_epochs=2, ema_decay=decay, callbacks=[recorder])
    average = recorder.trajectory[0]
    for t, weights in enumerate(recorder.trajectory[1:], start=2):
        warm = min(decay, t / (t + 9))
        average = warm * average + (1 - warm) * weights
    torch.testing.assert_close(run.model.mean.detach(), average, atol=1e-6, rtol=0)


class RecordDenormalFlushing(Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.flushing = flushes_denormals()


def test_training_flushes_denormals_and_restores_the_setting(tmp_path, gaussian_data):
    recorder = RecordDenormalFlushing()
    assert not flushes_denormals()
    _fit(gaussian_data, tmp_path / "run", max_epochs=1, callbacks=[recorder])
    assert recorder.flushing and not flushes_denormals()
    with denormals_flushed():  # a caller's own setting is kept
        _fit(gaussian_data, tmp_path / "again", max_epochs=1)
        assert flushes_denormals()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, gaussian_data):
    seed_everything(0)
    model = dgm.create("test-gaussian", data=gaussian_data)
    fit(model, gaussian_data, tmp_path / "run", max_epochs=1, batch_size=64, progress=False)
    good_model = load_file(tmp_path / "run" / "model.safetensors")
    good_state = (tmp_path / "run" / "checkpoints" / "last.safetensors").read_bytes()

    def diverging_loss(x):
        return {"loss": model.mean.sum() * float("nan")}

    model.loss = diverging_loss
    with pytest.raises(TrainingDiverged, match="loss became nan at step 8"):
        fit(model, gaussian_data, tmp_path / "run", max_epochs=2, batch_size=64, progress=False, resume=True)
    assert torch.equal(load_file(tmp_path / "run" / "model.safetensors")["mean"], good_model["mean"])
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").read_bytes() == good_state


def test_gradient_clipping_bounds_each_update(tmp_path, gaussian_data):
    far = gaussian_data.__class__("far", gaussian_data.train + 100.0, gaussian_data.test + 100.0)
    seed_everything(0)
    model = dgm.create("test-gaussian", data=far)
    fit(model, far, tmp_path / "run", max_steps=1, batch_size=64, lr=1.0, grad_clip=1e-3, progress=False)
    # after one Adam step the first moment is (1 - beta1)·g: the saved moments reveal the clipped gradient
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    moments = state["optimizer_states"][0]["state"]
    norm = torch.cat([m["exp_avg"].flatten() / 0.1 for m in moments.values()]).norm()
    assert norm == pytest.approx(1e-3, rel=1e-4)  # the raw gradient is about 100 times larger


def test_fit_refuses_data_that_does_not_fit_the_model(tmp_path, gaussian_data):
    model = dgm.create("test-gaussian", shape=(3,))
    with pytest.raises(ValueError, match="expects shape"):
        fit(model, gaussian_data, tmp_path / "run", max_epochs=1)
    with pytest.raises(ValueError, match="batch size 1000 is larger"):
        fit(dgm.create("test-gaussian", data=gaussian_data), gaussian_data, tmp_path / "r2", max_epochs=1,
            batch_size=1000, progress=False)


def test_cosine_schedule_decays_the_learning_rate_to_zero(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=2, lr_schedule="cosine")
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        _fit(gaussian_data, tmp_path / "bad", max_epochs=1, lr_schedule="linear")
    with pytest.raises(ValueError, match="needs max_steps or max_epochs"):
        _fit(gaussian_data, tmp_path / "open-ended", max_time=5, lr_schedule="cosine")
    assert not (tmp_path / "open-ended").exists()


class StopAfterThreeBatches(Callback):
    """Stops training in the middle of the first epoch, as Lightning's timer does at ``max_time``."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == 2:
            trainer.should_stop = True


def test_a_stop_within_an_epoch_does_not_evaluate_the_test_set(tmp_path, gaussian_data):
    """Lightning validates when ``max_time`` stops a run mid-epoch; the run's final evaluation follows anyway, so the
    trainer skips that pass (it used to evaluate the test set twice at the end of ``dgm train``)."""
    run = _fit(gaussian_data, tmp_path / "run", max_epochs=3, callbacks=[StopAfterThreeBatches()])
    assert load_state(run.directory / "checkpoints" / "last.safetensors")["batches_trained"] == 3
    logged = [name for log in RunFolder(run.directory).csv_logs() for name in read_metrics_csv(log)]
    assert not any(name.startswith("test/") for name in logged)


def test_ema_averages_floating_tensors_and_keeps_counts_current():
    """Integer buffers (batch norm's num_batches_tracked, a progressive GAN's step) are counts: the EMA's copy
    takes their current value; floating tensors follow the recursion, with its warm-up."""
    update = _floating_ema(0.9)
    weights, count = [torch.zeros(3)], [torch.tensor(4)]
    update(weights, [torch.ones(3)], torch.tensor(1))  # after one average the next keeps 2/11 of it
    update(count, [torch.tensor(11)], torch.tensor(1))
    torch.testing.assert_close(weights[0], torch.full((3,), 9 / 11))
    update(weights, [torch.ones(3)], torch.tensor(1000))  # later the decay itself
    torch.testing.assert_close(weights[0], torch.full((3,), 9 / 11 + 0.1 * 2 / 11))
    assert count[0].item() == 11


def test_bf16_mixed_precision_computes_in_bfloat16_keeps_float32_weights_and_clips(tmp_path):
    """``precision="bf16-mixed"`` is Lightning's autocast: the gradients differ from float32's by bfloat16's
    rounding (about 1%), the weights and optimizer state stay float32, and clipping still bounds the update (the
    non-fused Adam that Lightning needs for it)."""
    data = dgm.data.load("moons", n_train=256, n_test=64)

    def first_moments(precision: str) -> torch.Tensor:
        seed_everything(0)
        model = dgm.create("ddpm", data=data, hidden=[32, 32])
        run = fit(model, data, tmp_path / precision, max_steps=1, batch_size=64, lr=1e-3, grad_clip=1e-3,
                  precision=precision, progress=False)
        assert all(parameter.dtype == torch.float32 for parameter in run.model.parameters())
        assert json.loads((run.directory / "run.json").read_text())["train"]["precision"] == precision
        state = load_state(run.directory / "checkpoints" / "last.safetensors")
        moments = state["optimizer_states"][0]["state"]
        return torch.cat([m["exp_avg"].flatten() / 0.1 for m in moments.values()])

    full, half = first_moments("32-true"), first_moments("bf16-mixed")
    assert half.norm() == pytest.approx(1e-3, rel=1e-4) and full.norm() == pytest.approx(1e-3, rel=1e-4)
    assert not torch.equal(full, half)
    assert (full - half).norm() < 0.05 * full.norm()
