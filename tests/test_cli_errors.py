"""Every mistake at the command line or in a file the command reads is one line on stderr and exit code 2, never a
traceback: bad option values, unreadable image sets and weights files, checkpoints of another model, corrupt or
hand-edited checkpoints, impossible sample counts, metrics that do not apply, outputs that cannot be written."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import dgm
from dgm.checkpoint import WEIGHTS_FILE, CheckpointError, load_state, save_state
from dgm.cli import main
from dgm.metrics.quality import read_image_set
from dgm.nn.inception import InceptionV3

TINY_FLOW = ["--model", "realnvp", "--data", "moons-raw", "--data-arg", "n_train=256", "--data-arg", "n_test=128",
             "--model-arg", "n_layers=2", "--model-arg", "hidden=[8]"]


def refused(arguments: list[str], message: str, capsys) -> str:
    """Run ``dgm ARGUMENTS``; it must exit with 2 and one line on stderr that holds ``message``."""
    code = main(arguments)
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.count("\n") == 1 and error.endswith("\n"), error
    assert "Traceback" not in error, error
    assert message in error, error
    return error


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny trained run (a 2D flow on moons), shared by the tests; each test that damages it uses a copy."""
    run = tmp_path_factory.mktemp("runs") / "flow"
    assert main(["train", *TINY_FLOW, "--max-steps", "2", "--batch-size", "128", "--out", str(run),
                 "--no-progress", "--no-evaluate", "--no-pictures"]) == 0
    return run


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def grey_images(folder, n: int = 6, size: int = 28):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((size, size), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


# -- 1. command-line values ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, message", [
    (["--model-arg", "hidden=[64,"], "--model-arg 'hidden=[64,': the value is not valid YAML"),
    (["--model-arg", "hidden={a: [1"], "not valid YAML"),
    (["--model-arg", "x=!!python/object:os.system"], "not valid YAML"),
    (["--model-arg", "hidden=" + "[" * 3000], "not valid YAML"),  # nested past Python's recursion limit
    (["--data-arg", 'n_train="5'], "--data-arg 'n_train=\"5'"),
    (["--accelerator", "tpu"], "invalid choice: 'tpu' (choose from 'auto', 'cpu', 'gpu', 'cuda', 'mps')"),
    (["--max-epochs", "ten"], "argument --max-epochs: invalid int value: 'ten'"),
    (["--lr-schedule", "linear"], "invalid choice: 'linear'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_train_options(arguments, message, capsys):
    refused(["train", "--model", "realnvp", "--data", "moons", *arguments], message, capsys)


@pytest.mark.parametrize("arguments, message", [
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
    (["sample", "run"], "the following arguments are required: -o/--output"),
    (["sample", "run", "-o", "x.npz", "-n", "many"], "argument -n: invalid int value: 'many'"),
    (["evaluate", "--resize", "nearest"], "argument --resize: invalid choice: 'nearest'"),
])
def test_argparse_mistakes_are_one_line(arguments, message, capsys):
    refused(arguments, message, capsys)


# -- 2. image sets -------------------------------------------------------------------------------------------------

def test_sixteen_bit_grey_pngs_are_scaled_to_eight_bits(tmp_path):
    (tmp_path / "deep").mkdir()
    values = np.array([[0, 257, 32896, 65535]], np.uint16).repeat(4, 0)
    Image.fromarray(values).save(tmp_path / "deep" / "0.png")
    pixels = read_image_set(tmp_path / "deep")
    assert pixels.shape == (1, 1, 4, 4)
    assert pixels[0, 0, 0].tolist() == [0, 1, 128, 255]


def image_set_cases(tmp_path) -> list[tuple[str, str]]:
    """(set, message) pairs of bad image sets; each set also gets a good one to be compared with."""
    cases = []
    not_image = grey_images(tmp_path / "not-image")
    (not_image / "9.png").write_text("no picture here")
    cases.append((not_image, "9.png is not a readable image"))
    truncated = grey_images(tmp_path / "truncated")
    (truncated / "9.png").write_bytes((truncated / "0.png").read_bytes()[:45])  # cut inside the pixel data
    cases.append((truncated, "9.png is not a readable image"))
    other_file = grey_images(tmp_path / "other-file")
    (other_file / "notes.txt").write_text("hello")
    cases.append((other_file, "must hold only .png images, it also holds notes.txt"))
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", "holds no .png images"))
    (tmp_path / "text.npz").write_text("not an archive")
    cases.append((tmp_path / "text.npz", "is not a .npz file"))
    np.save(tmp_path / "array.npy", np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "array.npy").rename(tmp_path / "npy.npz")
    cases.append((tmp_path / "npy.npz", "is not a .npz file"))
    np.savez(tmp_path / "strings.npz", images=np.array(["a", "b"]))
    cases.append((tmp_path / "strings.npz", "strings.npz: images must be uint8 or floats"))
    np.savez(tmp_path / "objects.npz", images=np.array([{}, 1], dtype=object))
    cases.append((tmp_path / "objects.npz", "is not a readable .npz file"))
    np.savez(tmp_path / "big-ints.npz", images=np.full((4, 28, 28), 300, np.int64))
    cases.append((tmp_path / "big-ints.npz", "must be uint8 or floats"))
    complete = tmp_path / "complete.npz"
    np.savez(complete, images=np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "cut.npz").write_bytes(complete.read_bytes()[:-200])
    cases.append((tmp_path / "cut.npz", "cut.npz is not"))
    return cases


def test_unreadable_image_sets_name_the_file(tmp_path, capsys):
    good = grey_images(tmp_path / "good")
    cases = image_set_cases(tmp_path)
    for bad, message in cases:
        refused(["evaluate", "--real", str(good), "--fake", str(bad)], message, capsys)
    assert len(cases) == 10


# -- 3. Inception weights ------------------------------------------------------------------------------------------

def weights_cases(tmp_path) -> list[tuple[str, str]]:
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    (tmp_path / "noise.pth").write_bytes(np.random.default_rng(0).bytes(3000))
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "script.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    torch.save({"a": torch.ones(3)}, tmp_path / "other.pth")
    save_file({"a": torch.ones(2)}, tmp_path / "weights.safetensors")
    state = InceptionV3().state_dict()
    state["fc.weight"] = state["fc.weight"][:10]
    torch.save(state, tmp_path / "short-fc.pth")
    return [("empty.pth", "torch.load cannot read it"), ("text.pth", "torch.load cannot read it"),
            ("noise.pth", "torch.load cannot read it"), ("script.pt", "a TorchScript file"),
            ("list.pth", "it holds a list, not a dict"), ("weights.safetensors", "566 missing keys"),
            ("other.pth", "holds weights of a different model: 566 missing keys (first: Conv2d_1a_3x3.conv.weight), "
                          "1 unexpected (first: a)"),
            ("short-fc.pth", "1 of wrong shape (first: fc.weight (got (10, 2048), expected (1008, 2048)))"),
            (".", "do not exist (or are not a file)")]


def test_inception_weights_that_are_not_pytorch_fids(tmp_path, capsys):
    images = tmp_path / "images.npz"
    np.savez(images, images=np.zeros((4, 28, 28), np.uint8))
    cases = weights_cases(tmp_path)
    for name, message in cases:
        refused(["evaluate", "--real", str(images), "--fake", str(images), "--metrics", "fid",
                 "--inception-weights", str(tmp_path / name)], message, capsys)
    assert len(cases) == 9


# -- 4. checkpoints of another model, hand-edited trainer checkpoints ----------------------------------------------

def test_weights_of_another_model_are_one_line(run, tmp_path, capsys):
    dgm.create("realnvp", shape=(2,), n_layers=2, hidden=[16]).save(tmp_path / "wider")
    shutil.copy(tmp_path / "wider" / WEIGHTS_FILE, run / WEIGHTS_FILE)
    error = refused(["sample", str(run), "-o", str(tmp_path / "s.npz")],
                    "model.safetensors does not fit the realnvp of config.json, it holds weights of a different "
                    "model: 6 of wrong shape (first: bijection.bijections.0.conditioner.0.weight (got (16, 2), "
                    "expected (8, 2)))", capsys)
    assert "missing" not in error
    dgm.create("test-gaussian", shape=(2,)).save(tmp_path / "gaussian")
    shutil.copy(tmp_path / "gaussian" / WEIGHTS_FILE, run / WEIGHTS_FILE)
    refused(["evaluate", str(run)], "2 unexpected (first: log_std)", capsys)


def edited_checkpoint(path, edit) -> None:
    """Rewrite the trainer checkpoint at ``path`` with its skeleton JSON passed through ``edit`` (text → text)."""
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    metadata["dgm.checkpoint"] = edit(metadata["dgm.checkpoint"])
    save_file(tensors, path, metadata=metadata)


SKELETON_EDITS = [
    (lambda text: text.replace('"__tensor__": "root/state_dict/', '"__tensor__": "root/nowhere/', 1), "KeyError"),
    (lambda text: "[" * 100000 + "]" * 100000, "RecursionError"),
    (lambda text: '{"__dict__": 5}', "TypeError"),
    (lambda text: '{"__dict__": [[1, 2, 3]]}', "ValueError"),
    (lambda text: '{"__dict__": [[[1], 2]]}', "TypeError"),
    (lambda text: '{"__tensor__": ["a"]}', "TypeError"),
    (lambda text: text[:-40], "JSONDecodeError"),
]


@pytest.mark.parametrize("edit, kind", SKELETON_EDITS)
def test_hand_edited_trainer_checkpoints_are_one_checkpoint_error(tmp_path, edit, kind):
    path = tmp_path / "state.safetensors"
    save_state({"epoch": 1, "state_dict": {"w": torch.ones(3)}, "loops": [1, (2, 3)]}, path)
    edited_checkpoint(path, edit)
    with pytest.raises(CheckpointError, match=f"state.safetensors has malformed 'dgm.checkpoint' metadata \\({kind}"
                       ) as error:
        load_state(path)
    assert "\n" not in str(error.value)


def test_resuming_from_a_hand_edited_checkpoint_is_one_line(run, capsys):
    edited_checkpoint(run / "checkpoints" / "last.safetensors", lambda text: text.replace('"__tensor__"', '"x"', 1))
    refused(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"], "has malformed", capsys)


# -- 5. checksums --------------------------------------------------------------------------------------------------

def flip_last_tensor_byte(path) -> None:
    """Flip one bit of the last byte of the file: the tensor data, which safetensors itself does not check."""
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01
    path.write_bytes(bytes(content))


def test_a_flipped_bit_in_the_weights_is_refused(tmp_path, capsys):
    model = dgm.create("test-gaussian", shape=(2,))
    model.save(tmp_path)
    assert torch.equal(dgm.load(tmp_path).mean, model.mean)
    flip_last_tensor_byte(tmp_path / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt: its tensors do not match the checksum"):
        dgm.load(tmp_path)


def test_a_flipped_bit_in_a_run_is_one_line(run, tmp_path, capsys):
    assert main(["sample", str(run), "-n", "4", "-o", str(tmp_path / "before.npz")]) == 0
    flip_last_tensor_byte(run / WEIGHTS_FILE)
    refused(["sample", str(run), "-n", "4", "-o", str(tmp_path / "after.npz")],
            "model.safetensors is corrupt: its tensors do not match the checksum", capsys)
    flip_last_tensor_byte(run / WEIGHTS_FILE)  # back as it was
    flip_last_tensor_byte(run / "checkpoints" / "last.safetensors")
    refused(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"], "last.safetensors is corrupt",
            capsys)


def test_weights_without_a_checksum_still_load(tmp_path):
    """Runs written before dgm stored checksums load unchecked."""
    model = dgm.create("test-gaussian", shape=(2,))
    model.save(tmp_path)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, tmp_path / WEIGHTS_FILE)
    assert torch.equal(dgm.load(tmp_path).log_std, model.log_std)


# -- 7. sample counts ----------------------------------------------------------------------------------------------

def test_more_samples_than_memory_holds_are_refused(run, tmp_path, capsys):
    refused(["sample", str(run), "-n", "100000000000", "-o", str(tmp_path / "s.npz")],
            "the number of samples must be at most", capsys)


# -- 8. metrics that do not apply ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, metrics, message", [
    ((6, 28, 28), "modes", "modes cannot be measured on these samples: the -raw metrics and modes compare the data "
                           "vectors"),
    ((6, 28, 28), "fid-digits,kid-raw,pr-raw", "kid-raw, pr-raw cannot be measured on these samples"),
    ((6, 3, 32, 32), "fid-digits", "fid-digits cannot be measured on these samples: the -digits metrics use dgm's "
                                   "digit classifier, which takes 28x28 grey images; got samples of shape (3, 32, 32)"),
    ((6, 3, 28, 28), "is-digits", "is-digits cannot be measured"),
    ((6, 28, 28), "nll", "nll is the test likelihood of a run; two image sets have none"),
    ((6, 28, 28), "is", "needs Inception's classifier"),
    ((6, 28, 28), "is-digits,fid-digits", "too few samples (6 real, 6 generated): is-digits needs at least 10"),
    ((5, 28, 28), "pr-digits,dc-digits", "dc-digits needs at least 6"),
])
def test_metrics_that_do_not_apply_to_image_sets(tmp_path, capsys, shape, metrics, message):
    np.savez(tmp_path / "images.npz", images=np.zeros(shape, np.uint8))
    images = str(tmp_path / "images.npz")
    refused(["evaluate", "--real", images, "--fake", images, "--metrics", metrics], message, capsys)


def test_metrics_that_do_not_apply_to_a_run(run, capsys):
    """Refused before the test likelihood is computed: moons are no Gaussian mixture, and no images."""
    refused(["evaluate", str(run), "--metrics", "modes"], "modes cannot be measured on these samples: it counts the "
            "modes of a Gaussian mixture, known only for data drawn from one (8gaussians", capsys)
    refused(["evaluate", str(run), "--metrics", "fid,kid"], "fid, kid cannot be measured on these samples", capsys)
    assert not (run / "metrics.json").exists()


# -- 9. outputs and files that cannot be used ----------------------------------------------------------------------

def test_outputs_that_cannot_be_written(run, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "folder.html").mkdir()
    refused(["sample", str(run), "-o", str(tmp_path / "file" / "s.npz")], "file is a file, not a folder", capsys)
    refused(["sample", str(run), "-o", str(tmp_path / "file" / "s.png")], "file is a file, not a folder", capsys)
    refused(["sample", str(run), "-o", str(tmp_path / "folder.npz")], "folder.npz is a folder", capsys)
    refused(["report", str(run), "-o", str(tmp_path / "folder.html")], "folder.html is a folder", capsys)
    refused(["report", str(run), "-o", str(tmp_path / "file" / "r.html")], "file is a file, not a folder", capsys)


def test_outputs_in_a_folder_that_does_not_exist_yet_are_written_there(run, tmp_path):
    for output in (tmp_path / "new" / "s.npz", tmp_path / "new" / "s.png"):
        assert main(["sample", str(run), "-n", "4", "-o", str(output)]) == 0
        assert output.is_file()


def test_damaged_json_files_of_a_run(run, capsys):
    (run / "config.json").write_text("[" * 100000 + "]" * 100000)
    refused(["sample", str(run), "-o", "s.npz"], "config.json is not valid JSON", capsys)
    (run / "config.json").write_text(json.dumps({"model": "realnvp", "config": [1, 2]}))
    refused(["sample", str(run), "-o", "s.npz"], "config.json does not fit realnvp", capsys)


def test_a_real_bug_still_shows_its_traceback(run, monkeypatch):
    """Only mistakes of the user are one line: an error inside dgm propagates."""
    monkeypatch.setattr("dgm.cli._check_output", lambda path: [][0])
    with pytest.raises(IndexError):
        main(["sample", str(run), "-o", "s.npz"])
