"""Fault injection: a training killed (``kill -9``) at random points, during a checkpoint write included, and
resumed each time ends with the weights of an uninterrupted run, bit for bit; concurrent starts leave one run."""
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from dgm.checkpoint import load_state

RUNNER = Path(__file__).with_name("fault_runner.py")
TRAIN = ["train", "--model", "realnvp", "--data", "moons-raw", "--model-arg", "hidden=[8]", "--model-arg",
         "n_layers=2", "--batch-size", "500", "--max-epochs", "3", "--lr", "0.003", "--lr-schedule", "cosine",
         "--no-progress", "--no-pictures", "--no-evaluate"]  # 40 batches an epoch, 120 steps


def _run(kill: str, *arguments) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), kill, "--", *arguments], capture_output=True, text=True,
                          timeout=300)


def test_killed_at_five_points_and_resumed_each_time_the_weights_equal_an_uninterrupted_run(tmp_path):
    assert _run("none", *TRAIN, "--out", str(tmp_path / "straight")).returncode == 0
    run = tmp_path / "killed"
    started = _run("step:7", *TRAIN, "--out", str(run))  # before any checkpoint: the resume starts over
    assert started.returncode == -9
    # after steps within epochs 1 and 2, in the middle of writing the checkpoint of epoch 2, and at the last step
    for kill in ["step:45", "write:80", "step:95", "step:119"]:
        resumed = _run(kill, "train", "--resume", str(run), "--no-progress", "--no-pictures", "--no-evaluate")
        assert resumed.returncode == -9, resumed.stderr[-2000:]
    assert load_state(run / "checkpoints" / "last.safetensors")["global_step"] == 80  # the half write left it whole
    finished = _run("none", "train", "--resume", str(run), "--no-progress", "--no-pictures", "--no-evaluate")
    assert finished.returncode == 0, finished.stderr[-2000:]
    straight, killed = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run / "model.safetensors")
    assert straight.keys() == killed.keys()
    for name in straight:
        assert torch.equal(straight[name], killed[name]), name


def test_two_trainings_started_at_once_on_one_folder_leave_exactly_one_run(tmp_path):
    out = tmp_path / "run"
    starts = [subprocess.Popen([sys.executable, str(RUNNER), "none", "--", *TRAIN, "--seed", str(seed), "--out",
                                str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for seed in (1, 2)]
    results = [(start.wait(timeout=300), start.stderr.read()) for start in starts]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert refusal.count("\n") == 1
    assert "is in use: process" in refusal or "already holds a run" in refusal
    assert len(list((out / "logs").glob("csv-*"))) == 1
    winner = next(seed for seed, (code, _) in zip((1, 2), results) if code == 0)
    assert f'"seed": {winner}' in (out / "run.json").read_text()
