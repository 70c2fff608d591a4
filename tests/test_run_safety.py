"""Runs never mix, never silently skip work, and refuse without touching the folder (issue: reliability).

Each test checks the outcome and, where nothing should change, that the run folder is byte for byte as it was.
"""
import json
import os
import signal
import warnings

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import dgm
from dgm.checkpoint import CheckpointError, load_state
from dgm.cli import main
from dgm.run_folder import RunFolder, RunInUse
from dgm.training import TrainingInterrupted, fit, seed_everything


def _fit(data, directory, **options):
    seed_everything(0)
    model = dgm.load(directory) if options.get("resume") else dgm.create("test-gaussian", data=data)
    return fit(model, data, directory, batch_size=64, lr=0.05, progress=False, **options)


def _snapshot(folder) -> dict:
    """Every file below ``folder`` with its bytes."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _train(*arguments) -> int:
    return main(["train", *arguments, "--no-progress", "--no-pictures", "--no-evaluate"])


def _moons(out, *arguments) -> int:
    return _train("--model", "realnvp", "--data", "moons-raw", "--model-arg", "hidden=[8]", "--model-arg",
                  "n_layers=2", "--batch-size", "500", "--out", str(out), *arguments)


def test_a_second_training_of_a_folder_in_use_is_refused_naming_the_process(tmp_path, gaussian_data):
    folder = RunFolder(tmp_path / "run")
    with folder.owned():
        before = _snapshot(folder.path)
        with pytest.raises(RunInUse, match=f"process {os.getpid()} is training this run"):
            _fit(gaussian_data, folder.path, max_epochs=1)
        assert _snapshot(folder.path) == before
    _fit(gaussian_data, folder.path, max_epochs=1)  # the hold ends with its holder
    with folder.owned(), pytest.raises(RunInUse):
        _fit(gaussian_data, folder.path, max_epochs=2, resume=True)


def test_loading_a_run_that_a_process_still_trains_warns_that_it_is_the_last_epoch_export(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    folder = RunFolder(tmp_path / "run")
    with folder.owned(), pytest.warns(UserWarning, match=f"still being trained by process {os.getpid()}"):
        folder.load_model()  # what `dgm evaluate` and `dgm sample` load through
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder.load_model()  # the hold ended with its holder


def test_a_new_run_goes_only_into_a_new_or_empty_folder(tmp_path, gaussian_data):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _fit(gaussian_data, tmp_path / "file", max_epochs=1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no run"):
        _fit(gaussian_data, tmp_path / "notes", max_epochs=1)
    assert _snapshot(tmp_path / "notes") == {(tmp_path / "notes" / "todo.txt").relative_to(tmp_path / "notes"): b"mine"}
    (tmp_path / "empty").mkdir()
    assert _fit(gaussian_data, tmp_path / "empty", max_epochs=1).step > 0


def test_a_refused_run_leaves_nothing_behind(tmp_path, gaussian_data):
    with pytest.raises(ValueError, match="batch size 5000 is larger than the training set"):
        fit(dgm.create("test-gaussian", data=gaussian_data), gaussian_data, tmp_path / "run", batch_size=5000,
            progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_that_cannot_load_leaves_the_folder_unchanged(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    last = RunFolder(tmp_path / "run").last_checkpoint
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    (tmp_path / "run" / "metrics.json").write_text("{}")
    before = _snapshot(tmp_path / "run")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _fit(gaussian_data, tmp_path / "run", max_epochs=2, resume=True)
    assert _snapshot(tmp_path / "run") == before


def test_a_checkpoint_of_another_model_is_refused_in_one_line_before_anything_changes(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    before = _snapshot(tmp_path / "run")
    other = dgm.create("realnvp", data=dgm.data.load("moons-raw"))
    with pytest.raises(CheckpointError, match="another model than the run's realnvp: .* missing") as error:
        fit(other, dgm.data.load("moons-raw"), tmp_path / "run", max_epochs=2, resume=True, progress=False)
    assert "\n" not in str(error.value)
    assert _snapshot(tmp_path / "run") == before


def test_resuming_a_moved_folder_updates_its_own_checkpoint(tmp_path):
    assert _moons(tmp_path / "first", "--max-steps", "10") == 0
    moved = tmp_path / "first-moved"
    (tmp_path / "first").rename(moved)
    assert _train("--resume", str(moved), "--max-steps", "25") == 0
    assert sorted(path.name for path in (moved / "checkpoints").iterdir()) == ["epoch0000.safetensors",
                                                                               "last.safetensors"]
    assert load_state(moved / "checkpoints" / "last.safetensors")["global_step"] == 25
    assert _train("--resume", str(moved), "--max-steps", "30") == 0  # continues from 25, not from 10 again
    assert load_state(moved / "checkpoints" / "last.safetensors")["global_step"] == 30


def test_extending_a_cosine_run_continues_on_the_longer_cosine_and_says_so(tmp_path, capsys):
    assert _moons(tmp_path / "run", "--max-steps", "10", "--lr-schedule", "cosine") == 0
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    assert _train("--resume", str(tmp_path / "run"), "--max-steps", "30") == 0
    out = capsys.readouterr().out
    assert "resuming from step 10" in out and "until step 30" in out
    assert "rate goes from 0.000 to 0.750 times its base rate" in out  # 0.5 (1 + cos(pi / 3))
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != before
    state = load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert state["global_step"] == 30
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-6)


def test_a_new_end_replaces_the_stored_one_and_an_end_already_met_is_refused(tmp_path, capsys):
    assert _moons(tmp_path / "run", "--max-steps", "10", "--max-time", "1000") == 0
    assert _train("--resume", str(tmp_path / "run"), "--max-steps", "20") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["train"]["max_steps"] == 20 and record["train"]["max_time"] is None
    assert "until step 20\n" in capsys.readouterr().out
    before = _snapshot(tmp_path / "run")
    for end, reached in [(["--max-steps", "15"], "max_steps 15 (it is at step 20)"),
                         (["--max-time", "0.001"], "max_time 0.001 s"),
                         ([], "max_steps 20 (it is at step 20)")]:
        assert _train("--resume", str(tmp_path / "run"), *end) == 2
        assert reached in capsys.readouterr().err
        assert _snapshot(tmp_path / "run") == before


def test_a_run_record_without_its_data_is_one_clear_line(tmp_path, capsys):
    assert _moons(tmp_path / "run", "--max-steps", "5") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    del record["data"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    assert _train("--resume", str(tmp_path / "run"), "--max-steps", "10") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks 'data'" in err


class _CtrlC(Callback):
    """Presses Ctrl-C (sends SIGINT to this process) ``times`` times at the end of batch ``at + 1``, after the
    trainer's own check of that batch: training stops at the end of the next batch, ``at + 2``."""

    def __init__(self, at: int, times: int = 1):
        self.at, self.times = at, times

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.batches_trained == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_after_the_batch_with_a_checkpoint_there_and_the_resume_is_exact(tmp_path, gaussian_data):
    straight = _fit(gaussian_data, tmp_path / "straight", max_epochs=3)
    stopped = _fit(gaussian_data, tmp_path / "stopped", max_epochs=3, callbacks=[_CtrlC(at=7)])
    assert stopped.interrupted and stopped.step == 9
    assert load_state(tmp_path / "stopped" / "checkpoints" / "last.safetensors")["global_step"] == 9
    assert json.loads((tmp_path / "stopped" / "run.json").read_text())["seconds"] > 0
    resumed = _fit(gaussian_data, tmp_path / "stopped", max_epochs=3, resume=True)
    assert not resumed.interrupted
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once_and_names_the_resume_command(tmp_path, gaussian_data):
    _fit(gaussian_data, tmp_path / "run", max_epochs=1)
    with pytest.raises(TrainingInterrupted, match=f"dgm train --resume {tmp_path / 'run'}"):
        _fit(gaussian_data, tmp_path / "run", max_epochs=3, resume=True, callbacks=[_CtrlC(at=20, times=2)])
    assert json.loads((tmp_path / "run" / "run.json").read_text())["seconds"] > 0
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C after a hard stop


def test_ctrl_c_in_the_command_prints_the_step_and_the_resume_command(tmp_path, capsys, monkeypatch):
    import dgm.training
    original = dgm.training.fit
    monkeypatch.setattr(dgm.training, "fit", lambda *args, **kwargs: original(*args, callbacks=[_CtrlC(at=3)], **kwargs))
    assert _moons(tmp_path / "run", "--max-steps", "50") == 130
    err = capsys.readouterr().err
    assert "training stopped by Ctrl-C at step 5" in err and f"dgm train --resume {tmp_path / 'run'}" in err
