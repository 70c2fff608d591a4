"""The checkpoint format: safetensors + JSON, atomic, no pickle, clear errors."""
import json

import pytest
import torch

import dgm
from dgm.checkpoint import CheckpointError, load_state, save_state


def test_saved_and_loaded_model_gives_identical_log_prob(tmp_path):
    torch.manual_seed(0)
    model = dgm.create("test-gaussian", shape=(2,), jitter=0.3)
    with torch.no_grad():
        model.mean.normal_()
        model.log_std.normal_()
    model.save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"model": "test-gaussian",
                                                                 "config": {"shape": [2], "jitter": 0.3}}
    loaded = dgm.load(tmp_path)
    x = torch.randn(10, 2)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert type(loaded).load(tmp_path).config == model.config


def test_missing_truncated_and_corrupt_weights_name_the_file(tmp_path):
    model = dgm.create("test-gaussian", shape=(2,))
    model.save(tmp_path)
    weights = tmp_path / "model.safetensors"
    content = weights.read_bytes()
    weights.write_bytes(content[: len(content) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is truncated or corrupt"):
        dgm.load(tmp_path)
    weights.write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        dgm.load(tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors does not exist"):
        dgm.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        dgm.load(tmp_path)
    with pytest.raises(CheckpointError, match="not a run folder"):
        dgm.load(tmp_path / "absent")


def test_weights_that_do_not_fit_are_refused(tmp_path):
    dgm.create("test-gaussian", shape=(2,)).save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["config"]["shape"] = [3]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit"):
        dgm.load(tmp_path)


def test_nested_trainer_state_round_trips_exactly(tmp_path):
    state = {"epoch": 3, "state_dict": {"a.weight": torch.randn(2, 3)},
             "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(2)}},
                                   "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}],
             "loops": {"fit_loop": {"done": False, "nested": [1, 2.5, None, "x"]}},
             "rng": {"python": (3, tuple(range(5)), None), "torch": torch.get_rng_state()}}
    save_state(state, tmp_path / "state.safetensors")
    loaded = load_state(tmp_path / "state.safetensors")
    assert loaded["epoch"] == 3 and loaded["loops"] == state["loops"]
    assert torch.equal(loaded["state_dict"]["a.weight"], state["state_dict"]["a.weight"])
    group = loaded["optimizer_states"][0]
    assert torch.equal(group["state"][0]["exp_avg"], torch.ones(2)) and 0 in group["state"]
    assert group["param_groups"][0]["betas"] == (0.9, 0.999)
    assert loaded["rng"]["python"] == state["rng"]["python"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])


def test_state_refuses_what_would_need_pickle(tmp_path):
    with pytest.raises(TypeError, match="cannot be stored without pickle"):
        save_state({"f": object()}, tmp_path / "state.safetensors")
    assert not (tmp_path / "state.safetensors").exists()


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "state.safetensors"
    save_state({"x": torch.ones(3)}, path)
    import dgm.checkpoint as checkpoint

    def killed_midway(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        save_state({"x": torch.zeros(3)}, path)
    assert torch.equal(load_state(path)["x"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]
