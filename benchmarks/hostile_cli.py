"""A hostile user at the command line: bad inputs of every kind, each classified by what came back.

    python benchmarks/hostile_cli.py            # prints one line per attempt and the counts for docs/reliability.md

Each attempt runs ``dgm.cli.main`` in this process. Its outcome is a *clear error* when the exit code is not 0 and
stderr is one line that starts with ``dgm``; *served* when the input, odd as it is, has a right answer that the
command gave (an output path in a folder that does not exist yet: the folder is made); a *traceback* when an
exception escaped ``main`` or stderr holds one; *unclear* otherwise (several lines, or a silent exit 0 where a
refusal was due). Attempts on an existing run folder
also check that the folder is byte for byte as it was (*data lost* otherwise).
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from dgm.cli import main


def _png(path: Path, pixels: np.ndarray, bit_depth: int = 8) -> None:
    """A grey PNG of 8 or 16 bits written by hand (PIL cannot write 16-bit greys reliably)."""
    height, width = pixels.shape
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\x00" + pixels[row].astype(dtype).tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def _snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _setup(root: Path) -> dict[str, Path]:
    """A trained run, a copy to damage, image folders good and bad, files of the wrong kind."""
    places = {"run": root / "run", "root": root}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["train", "--model", "realnvp", "--data", "moons-raw", "--model-arg", "hidden=[8]", "--max-steps", "5",
              "--out", str(places["run"]), "--no-progress", "--no-pictures", "--no-evaluate", "--threads", "1"])
    places["grey8"], places["grey16"], places["junk"] = root / "grey8", root / "grey16", root / "junk"
    for name in ("grey8", "grey16", "junk"):
        places[name].mkdir()
    generator = np.random.default_rng(0)
    for index in range(4):
        _png(places["grey8"] / f"{index}.png", generator.integers(0, 256, (28, 28)))
        _png(places["grey16"] / f"{index}.png", generator.integers(0, 65536, (28, 28)), bit_depth=16)
        _png(places["junk"] / f"{index}.png", generator.integers(0, 256, (28, 28)))
    (places["junk"] / "notes.png").write_text("not an image")
    places["text"] = root / "notes.txt"
    places["text"].write_text("hello")
    places["empty"] = root / "empty"
    places["empty"].mkdir()
    places["npz"] = root / "images.npz"
    np.savez(places["npz"], images=generator.integers(0, 256, (4, 28, 28, 1)).astype(np.uint8))
    places["objects"] = root / "objects.npz"
    np.savez(places["objects"], images=np.array([{"a": 1}], dtype=object))
    return places


def _damaged_runs(root: Path, run: Path) -> dict[str, Path]:
    """Copies of the run, each damaged in one way."""
    damaged = {}

    def copy(name: str) -> Path:
        damaged[name] = root / name
        shutil.copytree(run, damaged[name])
        return damaged[name]
    weights = copy("flipped") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x10
    weights.write_bytes(bytes(data))
    (copy("truncated") / "model.safetensors").write_bytes(weights.read_bytes()[:100])
    record = json.loads((run / "run.json").read_text())
    (copy("no-data") / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "data"}))
    (copy("bad-json") / "run.json").write_text("{not json")
    (copy("list-json") / "run.json").write_text("[1, 2]")
    config = json.loads((run / "config.json").read_text())
    (copy("other-model") / "config.json").write_text(json.dumps({"model": "made", "config": config["config"]}))
    (copy("unknown-model") / "config.json").write_text(json.dumps({"model": "no-such-model", "config": {}}))
    (copy("bad-config") / "config.json").write_text(json.dumps({"model": "realnvp", "config": {"hidden": "x"}}))
    checkpoint = copy("bad-checkpoint") / "checkpoints" / "last.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    (copy("deep-json") / "run.json").write_text("[" * 100000 + "]" * 100000)
    return damaged


SERVED = {"sample into a missing folder": "no/where/s.png", "sample onto a folder": "empty.png",
          "report into a missing folder": "no/where/r.html"}  # what the command must have written


def _attempts(places: dict[str, Path], damaged: dict[str, Path]) -> list[tuple[str, list[str], Path | None]]:
    """(what, argv, folder that must not change)."""
    run, root = str(places["run"]), places["root"]
    quiet = ["--no-progress", "--no-pictures", "--no-evaluate"]
    moons = ["--model", "realnvp", "--data", "moons-raw"]
    attempts = [
        ("no command", [], None),
        ("unknown command", ["fly"], None),
        ("train without a recipe or model", ["train"], None),
        ("unknown recipe", ["train", "realnvp-moon"], None),
        ("unknown model", ["train", "--model", "realnvpp", "--data", "moons-raw"], None),
        ("unknown data set", ["train", "--model", "realnvp", "--data", "moon"], None),
        ("model without data", ["train", "--model", "realnvp"], None),
        ("broken YAML in --model-arg", ["train", *moons, "--model-arg", "hidden=[64,"], None),
        ("--model-arg without =", ["train", *moons, "--model-arg", "hidden"], None),
        ("unknown model option", ["train", *moons, "--model-arg", "hiden=[8]"], None),
        ("model option of the wrong type", ["train", *moons, "--model-arg", "hidden=abc"], None),
        ("negative layers", ["train", *moons, "--model-arg", "n_layers=-1"], None),
        ("unknown data option", ["train", *moons, "--data-arg", "n_trian=100"], None),
        ("data option of the wrong type", ["train", *moons, "--data-arg", "n_train=many"], None),
        ("negative max steps", ["train", *moons, "--max-steps", "-5", *quiet], None),
        ("zero batch size", ["train", *moons, "--batch-size", "0", *quiet], None),
        ("batch larger than the data", ["train", *moons, "--batch-size", "10000000", "--out",
                                        str(root / "never"), *quiet], None),
        ("negative learning rate", ["train", *moons, "--lr", "-1", *quiet], None),
        ("EMA decay of 1", ["train", *moons, "--ema-decay", "1", *quiet], None),
        ("cosine with a time limit only", ["train", *moons, "--lr-schedule", "cosine", "--max-time", "5", *quiet],
         None),
        ("unknown accelerator", ["train", *moons, "--accelerator", "tpu", "--max-steps", "1", *quiet], None),
        ("zero threads", ["train", *moons, "--threads", "0"], None),
        ("--out at a file", ["train", *moons, "--max-steps", "1", "--out", str(places["text"]), *quiet], None),
        ("--out at a folder that is not a run", ["train", *moons, "--max-steps", "1", "--out", str(places["grey8"]),
                                                 *quiet], places["grey8"]),
        ("--out at an existing run", ["train", *moons, "--max-steps", "1", "--out", run, *quiet], places["run"]),
        ("resume a missing folder", ["train", "--resume", str(root / "absent"), *quiet], None),
        ("resume a folder that is not a run", ["train", "--resume", str(places["grey8"]), *quiet], places["grey8"]),
        ("resume with a new learning rate", ["train", "--resume", run, "--lr", "0.5", *quiet], places["run"]),
        ("resume with a recipe", ["train", "realnvp-moons", "--resume", run, *quiet], places["run"]),
        ("resume to an end already reached", ["train", "--resume", run, "--max-steps", "3", *quiet], places["run"]),
        ("resume a finished run without a new end", ["train", "--resume", run, *quiet], places["run"]),
        ("resume a run without its data set", ["train", "--resume", str(damaged["no-data"]), "--max-steps", "9",
                                               *quiet], damaged["no-data"]),
        ("resume with a truncated checkpoint", ["train", "--resume", str(damaged["bad-checkpoint"]), "--max-steps",
                                                "9", *quiet], damaged["bad-checkpoint"]),
        ("resume with run.json not JSON", ["train", "--resume", str(damaged["bad-json"]), "--max-steps", "9",
                                           *quiet], damaged["bad-json"]),
        ("resume with run.json a list", ["train", "--resume", str(damaged["list-json"]), "--max-steps", "9",
                                         *quiet], damaged["list-json"]),
        ("resume with run.json nested 100000 deep", ["train", "--resume", str(damaged["deep-json"]), "--max-steps",
                                                     "9", *quiet], damaged["deep-json"]),
        ("resume a run whose config names another model", ["train", "--resume", str(damaged["other-model"]),
                                                           "--max-steps", "9", *quiet], damaged["other-model"]),
        ("sample a missing run", ["sample", str(root / "absent"), "-o", str(root / "s.png")], None),
        ("sample a folder that is not a run", ["sample", str(places["grey8"]), "-o", str(root / "s.png")], None),
        ("sample zero", ["sample", run, "-n", "0", "-o", str(root / "s.png")], None),
        ("sample 10^11", ["sample", run, "-n", "100000000000", "-o", str(root / "s.npz")], None),
        ("sample to an unknown format", ["sample", run, "-o", str(root / "s.jpg")], None),
        ("sample into a missing folder", ["sample", run, "-o", str(root / "no" / "where" / "s.png")], None),
        ("sample onto a folder", ["sample", run, "-o", str(places["empty"]) + ".png/"], None),
        ("sample with labels of an unconditional model", ["sample", run, "--labels", "3", "-o",
                                                          str(root / "s.png")], None),
        ("sample with an unknown option", ["sample", run, "--sample-arg", "steps=50", "-o", str(root / "s.png")],
         None),
        ("sample a bit-flipped model", ["sample", str(damaged["flipped"]), "-o", str(root / "s.png")], None),
        ("sample a truncated model", ["sample", str(damaged["truncated"]), "-o", str(root / "s.png")], None),
        ("sample a config of another model", ["sample", str(damaged["other-model"]), "-o", str(root / "s.png")],
         None),
        ("sample an unknown model name", ["sample", str(damaged["unknown-model"]), "-o", str(root / "s.png")], None),
        ("sample a config with a bad option", ["sample", str(damaged["bad-config"]), "-o", str(root / "s.png")],
         None),
        ("evaluate nothing", ["evaluate"], None),
        ("evaluate a run and image sets", ["evaluate", run, "--real", str(places["grey8"]), "--fake",
                                           str(places["grey8"])], None),
        ("evaluate only --real", ["evaluate", "--real", str(places["grey8"])], None),
        ("evaluate an unknown metric", ["evaluate", run, "--metrics", "fdi"], places["run"]),
        ("evaluate nll of image sets", ["evaluate", "--real", str(places["grey8"]), "--fake", str(places["grey8"]),
                                        "--metrics", "nll"], None),
        ("evaluate modes of image sets", ["evaluate", "--real", str(places["grey8"]), "--fake",
                                          str(places["grey8"]), "--metrics", "modes"], None),
        ("evaluate a folder with a non-image", ["evaluate", "--real", str(places["junk"]), "--fake",
                                                str(places["grey8"]), "--metrics", "fid-digits"], None),
        ("evaluate an empty folder", ["evaluate", "--real", str(places["empty"]), "--fake", str(places["grey8"]),
                                      "--metrics", "fid-digits"], None),
        ("evaluate an object array", ["evaluate", "--real", str(places["objects"]), "--fake", str(places["npz"]),
                                      "--metrics", "fid-digits"], None),
        ("evaluate a text file as images", ["evaluate", "--real", str(places["text"]), "--fake",
                                            str(places["npz"]), "--metrics", "fid-digits"], None),
        ("inception weights that are text", ["evaluate", "--real", str(places["grey8"]), "--fake",
                                             str(places["grey8"]), "--metrics", "fid", "--inception-weights",
                                             str(places["text"])], None),
        ("inception weights missing", ["evaluate", "--real", str(places["grey8"]), "--fake", str(places["grey8"]),
                                       "--metrics", "fid", "--inception-weights", str(root / "absent.pth")], None),
        ("-digits metrics on 2D data", ["evaluate", run, "--metrics", "fid-digits"], places["run"]),
        ("zero evaluation samples", ["evaluate", run, "-n", "0"], places["run"]),
        ("zero importance samples", ["evaluate", run, "--importance-samples", "0"], places["run"]),
        ("evaluate a bit-flipped model", ["evaluate", str(damaged["flipped"])], damaged["flipped"]),
        ("report of a folder without runs", ["report", str(places["grey8"]), "-o", str(root / "r.html")], None),
        ("report of a missing folder", ["report", str(root / "absent"), "-o", str(root / "r.html")], None),
        ("report into a missing folder", ["report", run, "-o", str(root / "no" / "where" / "r.html")], None),
        ("report inside a file", ["report", run, "-o", str(places["text"] / "r.html")], None),
        ("report onto a folder", ["report", run, "-o", str(places["empty"])], None),
        ("sample inside a file", ["sample", run, "-o", str(places["text"] / "s.png")], None),
    ]
    return attempts


def _try(argv: list[str]) -> tuple[str, int | None, str]:
    """Run one attempt; its outcome (clear, traceback, unclear), exit code and stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:  # argparse refuses with exit code 2 and a usage line
        code = exit_.code
    except BaseException as error:  # noqa: BLE001 - counted, not hidden
        return "traceback", None, f"{type(error).__name__}: {error}"
    message = err.getvalue()
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith("  ") and not line.startswith("                 ")]
    if "Traceback" in message:
        return "traceback", code, message
    if code not in (0, None) and len(lines) == 1 and lines[0].startswith("dgm"):
        return "clear", code, lines[0]
    return "unclear", code, message


def run() -> dict[str, int]:
    torch.set_num_threads(1)
    counts = {"attempts": 0, "clear": 0, "served": 0, "traceback": 0, "unclear": 0, "data lost": 0}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        places = _setup(root)
        damaged = _damaged_runs(root, places["run"])
        for what, argv, folder in _attempts(places, damaged):
            before = _snapshot(folder) if folder is not None else None
            outcome, code, message = _try(argv)
            if outcome == "unclear" and code == 0 and what in SERVED and (root / SERVED[what]).is_file():
                outcome = "served"
            lost = before is not None and _snapshot(folder) != before
            counts["attempts"] += 1
            counts[outcome] += 1
            counts["data lost"] += lost
            first = message.strip().splitlines()[-1] if message.strip() else ""
            print(f"{outcome:9} exit {code!s:4} {'DATA LOST ' if lost else ''}{what}: {first[:160]}")
    print(json.dumps(counts))
    return counts


if __name__ == "__main__":
    sys.exit(0 if run()["traceback"] == 0 else 1)
