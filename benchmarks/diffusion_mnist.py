"""The MNIST figures of a trained DDPM run (issue 14), in one process:

1. the run's own sampler: seconds per 1000 samples and the FID of ``--samples`` samples against as many test images;
2. FID against the number of steps (DPM-Solver++ and DDIM at several step counts, DDPM's 1000 ancestral steps),
   ``--sweep-samples`` samples each against as many test images, drawn as ``steps.png``;
3. test bits/dim by the variational bound (the stratified estimate over 100 of the middle steps, on
   ``--bound-examples`` test images) and by the probability-flow ODE (Hutchinson's trace, dequantized, on
   ``--ode-examples``), each with its standard error over the examples.

Sampling runs in the run's training precision (bf16 autocast for ``ddpm-mnist``); the likelihoods in float32.
The FID protocol is benchmarks/image_fid.py's (TF-FID Inception features; cached test features).

    dgm train ddpm-mnist --threads 1 --out runs/ddpm-mnist
    python benchmarks/diffusion_mnist.py runs/ddpm-mnist --threads 2 --out docs/diffusion.md

``--smoke`` checks the script in a minute with tiny counts. ``--sampler NAME --steps K`` replaces the run's sampler
in part 1, and ``--fid-only`` stops after it (it then writes no document).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from doc_tables import write_between_markers
from image_fid import WithSampleOptions, fid, floor_fid, test_statistics, timed_samples

from dgm import plots
from dgm.metrics.features import InceptionFeatures
from dgm.run_folder import RunFolder

BOUND_TIMESTEPS = 100  # of the 999 middle steps: a standard error of 0.02 bits/dim on 1000 test images
SWEEP = [("dpm_solver", 10), ("dpm_solver", 20), ("dpm_solver", 50), ("ddim", 20), ("ddim", 50), ("ddim", 100),
         ("ancestral", 20), ("ancestral", 1000)]


def bits_per_dim(model, images: torch.Tensor, batch_size: int, **options) -> tuple[float, float, float]:
    """Mean test bits/dim, its standard error over the images, and the seconds they took."""
    started = time.perf_counter()
    with torch.no_grad() if options.get("method") != "ode" else torch.enable_grad():
        log_p = torch.cat([model.log_prob(images[i:i + batch_size], **options).detach()
                           for i in range(0, len(images), batch_size)]).double()
    bits = -log_p / (images[0].numel() * math.log(2))
    return bits.mean().item(), (bits.std() / len(bits) ** 0.5).item(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--sweep-samples", type=int, default=1000)
    parser.add_argument("--bound-examples", type=int, default=1000)
    parser.add_argument("--ode-examples", type=int, default=100)
    parser.add_argument("--floor", action="store_true", help="also the FID of --samples training images")
    parser.add_argument("--sampler", help="the sampler of part 1 (default: the run's own)")
    parser.add_argument("--steps", type=int, help="its steps (with --sampler)")
    parser.add_argument("--fid-only", action="store_true", help="only part 1, printed")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, help="a document with markers for this script")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.sweep_samples, args.bound_examples, args.ode_examples = 20, 20, 4, 2
    torch.set_num_threads(args.threads)
    folder = RunFolder(args.run)
    model, data = folder.load_model().eval(), folder.load_data()
    precision = folder.training_precision()
    extractor = InceptionFeatures()
    lines = [f"Run `{args.run.name}` ({folder.read_record().get('seconds', 0):.0f} s of training), sampling in "
             f"{precision}, {args.threads} thread(s):", ""]

    options = {} if args.sampler is None else {"sampler": args.sampler, "steps": args.steps}
    name = f"{args.sampler}, {args.steps} steps" if options else \
        f"the run's sampler ({model.sampler_name}, {model.sampler_options})"
    samples, seconds = timed_samples(WithSampleOptions(model, precision, **options), args.samples, 0, name)
    test = test_statistics(extractor, data, args.samples)
    score = fid(extractor, test, samples, data)
    floor = f"{floor_fid(extractor, test, data, args.samples):.2f}" if args.floor else "not measured"
    lines += [f"- {name}: {seconds * 1000 / args.samples:.1f} s per 1000 samples; FID {score:.2f} with "
              f"{args.samples} samples against {args.samples} test images (floor, {args.samples} training images: "
              f"{floor})", ""]
    if args.fid_only:
        print("\n".join(lines))
        return

    lines += [f"| sampler | steps | FID ({args.sweep_samples} samples) | s per 1000 samples |", "|---|---|---|---|"]
    sweep_test = test_statistics(extractor, data, args.sweep_samples)
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for name, steps in SWEEP:
        sweep_samples, seconds = timed_samples(WithSampleOptions(model, precision, sampler=name, steps=steps),
                                               args.sweep_samples, 1, f"{name} {steps}")
        score = fid(extractor, sweep_test, sweep_samples, data)
        curves.setdefault(name, ([], []))
        curves[name][0].append(steps)
        curves[name][1].append(score)
        lines.append(f"| {name} | {steps} | {score:.2f} | {seconds * 1000 / args.sweep_samples:.1f} |")
        print(lines[-1], flush=True)
    sweep_floor = floor_fid(extractor, sweep_test, data, args.sweep_samples)
    lines += ["", f"Real data at {args.sweep_samples}: the first {args.sweep_samples} training images score "
              f"{sweep_floor:.2f}.", ""]
    plots.quality_against_steps(curves, args.run / "steps.png", reference=sweep_floor,
                                title=f"{args.run.name}: FID of {args.sweep_samples} samples")

    test_images = data.test[:max(args.bound_examples, args.ode_examples)].to(model.device)
    vlb = bits_per_dim(model, test_images[:args.bound_examples], 100, method="vlb", timesteps=BOUND_TIMESTEPS)
    ode = bits_per_dim(model, test_images[:args.ode_examples], 50, method="ode")
    lines += ["| likelihood | test images | bits/dim (a bound) | ± SE | seconds |", "|---|---|---|---|---|",
              f"| variational bound, {BOUND_TIMESTEPS} stratified timesteps | {args.bound_examples} | {vlb[0]:.3f} | "
              f"{vlb[1]:.3f} | {vlb[2]:.0f} |",
              f"| probability-flow ODE (dopri5 1e-5, Hutchinson, dequantized) | {args.ode_examples} | {ode[0]:.3f} | "
              f"{ode[1]:.3f} | {ode[2]:.0f} |"]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        write_between_markers(args.out, "diffusion_mnist.py", text)


if __name__ == "__main__":
    main()
