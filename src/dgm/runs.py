"""Evaluation and pictures of runs: what ``dgm evaluate``, ``dgm sample``, ``dgm train`` and ``dgm report`` do with
the run folders that ``fit`` fills (their files are :mod:`dgm.run_folder`'s).

What a model offers beyond ``sample`` and ``log_prob`` is asked through the protocol's optional hooks
(``model.offers(...)``, :data:`dgm.core.OPTIONAL_HOOKS`), never by probing its attributes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from dgm import plots
from dgm.core import sample_in_precision, sample_labels
from dgm.data.base import Data
from dgm.data.energies import EnergyTarget
from dgm.distributions.codec import to_levels
from dgm.metrics.likelihood import log_likelihoods, nll_summary
from dgm.metrics.quality import model_quality
from dgm.objectives import reverse_kl_terms
from dgm.run_folder import CURVES_PICTURE, SAMPLES_PICTURE, RunFolder

N_PICTURE_SAMPLES = {"image": 64, "vector": 4000, "sequence": 4}
LATENT_POINTS = 4000  # test examples in the picture of a 2D latent space
RECONSTRUCTION_PAIRS = {"image": 32, "vector": 500}  # test examples beside their reconstructions
INTERPOLATIONS = (10, 10)  # pairs of test images, steps from one to the other (homework 2)
ENCODER_BATCH = 500  # examples per call of latent_codes
TRUNCATION_OPTIONS = ("psi", "truncation")  # sample options of a truncation trick, the preferred first
TRUNCATION_SWEEPS = {"psi": (1.0, 0.7, 0.5, 0.3, 0.0), "truncation": (2.0, 1.0, 0.5, 0.25, 0.05)}
REVERSE_KL_SAMPLES = 20000  # samples of q behind the reported KL(q ‖ p) on an energy's data
DIFFUSION_TIMES = {"vector": (0.0, 0.1, 0.25, 0.5, 0.75, 1.0),  # the columns of diffusion.png
                   "image": (0.0, 0.1, 0.2, 0.3, 0.4, 0.55, 0.75, 1.0)}
DIFFUSION_EXAMPLES = {"vector": 2000, "image": 4}  # test points (and reverse paths); test images, reverse paths
SCORE_TIMES = (0.05, 0.2, 0.6)  # the panels of score_field.png
DENSITY_SECONDS = 20.0  # about how long the model's density picture may take to evaluate
PROBE_RESOLUTION, MIN_DENSITY_RESOLUTION = 16, 40  # the grid that times the density; the coarsest grid drawn


def data_entropy(data: Data) -> float | None:
    """The exact differential (or discrete) entropy of the data generator in nats, where it is known."""
    entropy = getattr(data.distribution, "entropy", None)
    return None if entropy is None else entropy()


def evaluate_run(directory: str | Path, batch_size: int = 1000, progress: bool = False,
                 sample_quality: dict | None = None, importance_samples: int | None = None,
                 likelihood_options: dict | None = None, precision: str | None = None) -> dict:
    """Test NLL (nats/example) and bits/dim of a trained run, written to and returned as ``metrics.json``, with
    the median, the worst test example and a ``warning`` where heavy tails make the mean untrustworthy
    (:func:`~dgm.metrics.likelihood.nll_summary`), and the end of the validation curve that the mean should agree
    with (:func:`last_validation_loss`); with ``sample_quality`` (options of
    :func:`dgm.metrics.quality.model_quality`, ``{}`` for its defaults) also FID, KID, IS, precision/recall,
    density/coverage or mode coverage of the model's samples. ``importance_samples`` tightens a bound with that
    many importance samples (see :func:`~dgm.metrics.likelihood.log_likelihoods`), and ``likelihood_options`` are
    other options of the model's ``log_prob`` (recorded in the metrics). On the samples of an energy
    (``energy-u1`` …) a model that gives the density of its samples also gets ``KL(q ‖ p)`` from fresh samples,
    however it was trained. A model that offers ``latent_diagnostics`` (a VAE's active units, KL per dimension,
    ELBO surgery) gets them on the test data under ``latent``. Samples are drawn in the arithmetic of ``precision``
    (default: the run's training precision); likelihoods are computed in float32."""
    folder = RunFolder(directory)
    record = folder.read_record()
    model, data = folder.load_model(), folder.load_data()
    sample_options = (sample_quality or {}).get("sample_options")
    if sample_options:
        model.check_sample_options(sample_options)  # before the NLL, which may take long
    metrics: dict = {"model": model.model_name, "data": data.name}
    if model.likelihood is None:
        metrics["likelihood"] = None
    else:
        labels = None if model.n_classes is None else data.test_labels
        log_p = log_likelihoods(model, data.test, batch_size=batch_size, progress=progress, labels=labels,
                                importance_samples=importance_samples, options=likelihood_options)
        metrics |= nll_summary(log_p, data.dim, model.likelihood)
        if importance_samples is not None:
            metrics["importance_samples"] = importance_samples
        if likelihood_options:
            metrics["likelihood_options"] = likelihood_options
        metrics["validation_loss"] = last_validation_loss(folder)
    if model.offers("latent_diagnostics"):
        metrics["latent"] = model.latent_diagnostics(data.test)
    entropy = data_entropy(data)
    if entropy is not None:
        metrics["entropy_nats"] = entropy
    if isinstance(data.distribution, EnergyTarget) and model.offers("sample_with_log_prob"):
        with torch.no_grad():
            terms = torch.cat([reverse_kl_terms(model, data.distribution, batch_size)
                               for _ in range(REVERSE_KL_SAMPLES // batch_size)])
        metrics["reverse_kl_nats"] = terms.mean().item()
        metrics["reverse_kl_stderr"] = (terms.std() / len(terms) ** 0.5).item()
    if sample_quality is not None:
        metrics["sampling_precision"] = precision or folder.training_precision()
        if sample_options:
            metrics["sample_options"] = sample_options
        metrics["sample_quality"] = model_quality(model, data, progress=progress, **sample_quality,
                                                  precision=metrics["sampling_precision"])
    metrics["train_seconds"] = record.get("seconds")
    folder.write_metrics(metrics)
    return metrics


def last_validation_loss(folder: RunFolder) -> float | None:
    """The last epoch-end test loss of the training logs, the end of the validation curve: for a model trained by
    its own likelihood objective the NLL (or its bound) in nats per example of the same test set, with other
    dequantization draws; ``None`` when no epoch ended."""
    curves = [plots.read_metrics_csv(path) for path in folder.csv_logs()]
    ends = [curve["test/loss"][1][-1] for curve in curves if "test/loss" in curve]
    return float(ends[-1]) if ends else None


@torch.no_grad()
def discrete_table(model, levels: int, dims: int) -> torch.Tensor:
    """The model's probability of every cell of a small discrete space, shape ``(levels,) * dims``."""
    grids = torch.meshgrid(*[torch.arange(levels, dtype=torch.float32)] * dims, indexing="ij")
    cells = torch.stack([g.reshape(-1) for g in grids], dim=1)
    return model.log_prob(cells).exp().reshape((levels,) * dims)


def save_samples_picture(samples: torch.Tensor, data: Data, path: str | Path, title: str | None = None) -> Path:
    """The picture that suits samples of ``data``: an image grid, a scatter over the test data, sequences beside
    test sequences, or the frequency of each value (a histogram for 1D tables, a heat map for 2D tables)."""
    if data.is_image:
        return plots.save_image_grid(samples, data.levels, path, title=title)
    if is_sequence(data):
        return plots.sequences(samples, path, reference=data.test, count=len(samples), title=title)
    if data.levels is None and data.shape == (2,):
        return plots.scatter_2d(samples, path, reference=data.test[:len(samples)], title=title)
    if data.levels is not None and data.shape == (1,):
        return plots.histogram_1d(samples[:, 0], data.levels, path, title=title)
    if data.levels is not None and data.shape == (2,):
        cells = samples[:, 0].long() * data.levels + samples[:, 1].long()
        frequencies = torch.bincount(cells, minlength=data.levels ** 2).double() / len(samples)
        return plots.heatmap_2d_discrete(frequencies.view(data.levels, data.levels), path, title=title)
    raise ValueError(f"no picture for data of shape {data.shape}; write the samples to a .npz file instead")


def is_sequence(data: Data) -> bool:
    """Whether examples are one-channel sequences ``(1, T)`` (audio-like data, e.g. for WaveNet)."""
    return len(data.shape) == 2 and data.shape[0] == 1


def density_resolution(log_prob, bounds, seconds: float = DENSITY_SECONDS) -> int:
    """The side of the density picture's grid whose points ``log_prob`` evaluates in about ``seconds``, between
    ``MIN_DENSITY_RESOLUTION`` and 200, from the time it takes on a 16x16 grid (a flow: 200; a diffusion model's
    1000-step bound, 6 ms a point: about 60)."""
    started = time.perf_counter()
    plots.evaluate_density(log_prob, bounds, PROBE_RESOLUTION)  # the picture's own evaluation, on a small grid
    per_point = (time.perf_counter() - started) / PROBE_RESOLUTION ** 2
    return int(min(200, max(MIN_DENSITY_RESOLUTION, math.sqrt(seconds / per_point))))


@torch.no_grad()
def write_pictures(model, data: Data, directory: str | Path, sample_options: dict | None = None,
                   precision: str = "32-true") -> list[Path]:
    """``samples.png`` (drawn with ``sample_options`` in the arithmetic of ``precision``); where the model offers
    them its density beside the data's, latent space (:func:`_latent_pictures`), layer trajectory, a diffusion
    model's forward and reverse processes (:func:`_diffusion_picture`) and score field, and probability table; and
    ``curves.png``, the training curves."""
    folder = RunFolder(directory)
    name = f"{model.model_name} on {data.name}"
    n = N_PICTURE_SAMPLES["image" if data.is_image else "sequence" if is_sequence(data) else "vector"]
    options = model.check_sample_options(sample_options or {})
    samples = sample_in_precision(model, n, precision, **sample_labels(model, n), **options)
    written = [save_samples_picture(samples, data, folder.picture(SAMPLES_PICTURE), title=f"samples of {name}")]
    points_2d = data.levels is None and data.shape == (2,)
    if points_2d and model.likelihood is not None and model.n_classes is None:
        known = getattr(data.distribution, "log_prob", None)  # the data's own density, drawn beside the model's
        what = "density" if model.likelihood == "exact" else "exp(lower bound of the log-density)"
        density_plot, _ = plots.density_2d(model.log_prob, _bounds(data), folder.picture("density.png"),
                                           resolution=density_resolution(model.log_prob, _bounds(data)),
                                           title=f"{what} of {name}", reference=known)
        written.append(density_plot)
    if points_2d and model.offers("critic_output") and model.n_classes is None:
        written.append(plots.critic_map(model.critic_output, _bounds(data), folder.picture("critic.png"),
                                        real=data.test[:n], fake=samples, title=f"critic of {name}"))
    if data.is_image and model.offers("mix_styles"):
        written.append(_style_mixing_picture(model, data, folder.picture("style_mixing.png"), title=name))
    truncation = next((option for option in TRUNCATION_OPTIONS if model.accepts_sample_option(option)), None)
    if data.is_image and truncation is not None:
        written.append(_truncation_picture(model, data, truncation, folder.picture("truncation.png"), title=name))
    if model.offers("latent_codes"):
        written += _latent_pictures(model, data, folder, name, options)
    if points_2d and model.offers("layer_trajectory"):
        written.append(_trajectory_picture(model, data, folder.picture("trajectory.png"), title=name))
    if (points_2d or data.is_image) and model.offers("noised") and model.offers("reverse_path"):
        written.append(_diffusion_picture(model, data, folder.picture("diffusion.png"), name, options))
    if points_2d and model.offers("score") and model.n_classes is None:
        written.append(_score_field_picture(model, data, folder.picture("score_field.png"), title=name))
    if data.levels is not None and data.shape in ((1,), (2,)) and model.likelihood == "exact":
        written.append(_probability_picture(model, data, folder.picture("probabilities.png"), title=name))
    logs = folder.csv_logs()
    if logs:
        written.append(plots.training_curves(logs, folder.picture(CURVES_PICTURE)))
    return written


def _latent_pictures(model, data: Data, folder: RunFolder, name: str, options: dict) -> list[Path]:
    """The pictures of a model that offers ``latent_codes``: ``latent.png``, the test data's codes coloured by label
    where the latent space is 2-dimensional; and where it also offers ``decode`` (homework 2), for images
    ``reconstructions.png`` (test images beside the decoder's mean at their codes) and ``interpolations.png``
    (decoded straight lines between the codes of two test images), for 2D points ``reconstructions.png`` and
    ``decoder_noise.png`` (samples with and without the decoder's noise, where ``sample`` takes
    ``decoder_noise``)."""
    written = []
    if model.latent_codes(data.test[:1].to(model.device)).shape[1:] == (2,):
        codes = _latent_codes(model, data.test[:LATENT_POINTS])
        labels = None if data.test_labels is None else data.test_labels[:len(codes)]
        written.append(plots.latent_scatter(codes, folder.picture("latent.png"), labels=labels,
                                            title=f"latent space of {name}"))
    if not model.offers("decode"):
        return written
    points_2d = data.levels is None and data.shape == (2,)
    if data.is_image:
        test = data.test[:RECONSTRUCTION_PAIRS["image"]]
        reconstructions, noise = _decoder_mean(model, _latent_codes(model, test), fallback=True)
        written.append(plots.image_pairs(test, reconstructions, data.levels, folder.picture("reconstructions.png"),
                                         title=f"test images and their reconstructions ({noise})\nby {name}"))
        written += _interpolation_picture(model, data, folder.picture("interpolations.png"), name)
    elif points_2d:
        test = data.test[:RECONSTRUCTION_PAIRS["vector"]]
        reconstructions, _ = _decoder_mean(model, _latent_codes(model, test), fallback=False)
        if reconstructions is not None:
            written.append(plots.reconstructions_2d(test, reconstructions, folder.picture("reconstructions.png"),
                                                    title=f"reconstructions (decoder mean)\nby {name}"))
        written += _decoder_noise_picture(model, data, folder.picture("decoder_noise.png"), name, options)
    return written


def _latent_codes(model, x: torch.Tensor) -> torch.Tensor:
    """``model.latent_codes`` of ``x``, in batches."""
    return torch.cat([model.latent_codes(batch.to(model.device)) for batch in x.split(ENCODER_BATCH)])


def _decoder_mean(model, codes: torch.Tensor, fallback: bool) -> tuple[torch.Tensor | None, str]:
    """``decode(codes)`` without the decoder's noise and the words ``"decoder mean"``; where the decoder has no
    mean (``ValueError``: an autoregressive decoder), a draw and ``"a draw of the decoder"`` if ``fallback``, else
    ``None``."""
    try:
        return model.decode(codes, decoder_noise=False), "decoder mean"
    except ValueError:
        return (model.decode(codes), "a draw of the decoder") if fallback else (None, "")


def _interpolation_picture(model, data: Data, path: Path, name: str) -> list[Path]:
    """Homework 2's interpolations: the decoder's mean along ``z = (1 − t) z₁ + t z₂`` for ``t`` from 0 to 1, one
    row per pair of test images (none where the decoder has no mean: a draw of each step would cost more than the
    samples)."""
    pairs, steps = INTERPOLATIONS
    if len(data.test) < 2 * pairs:
        return []
    codes = _latent_codes(model, data.test[:2 * pairs])
    start, end = codes[:pairs].unsqueeze(1), codes[pairs:].unsqueeze(1)
    t = torch.linspace(0, 1, steps, device=codes.device, dtype=codes.dtype).view(1, steps, *[1] * (codes.dim() - 1))
    frames, _ = _decoder_mean(model, ((1 - t) * start + t * end).flatten(0, 1), fallback=False)
    if frames is None:
        return []
    return [plots.save_image_grid(frames, data.levels, path, nrow=steps,
                                  title=f"interpolations between test images by {name}")]


def _decoder_noise_picture(model, data: Data, path: Path, name: str, options: dict) -> list[Path]:
    """Homework 2's samples with and without decoder noise, side by side over the test data, where the model's
    ``sample`` takes ``decoder_noise``."""
    try:
        model.check_sample_options({"decoder_noise": False})
    except ValueError:
        return []
    n = N_PICTURE_SAMPLES["vector"]
    options = {key: value for key, value in options.items() if key != "decoder_noise"} | sample_labels(model, n)
    panels = {f"samples {'with' if noise else 'without'} decoder noise": model.sample(n, decoder_noise=noise,
                                                                                       **options)
              for noise in (True, False)}
    return [plots.scatter_panels(panels, path, reference=data.test[:n], title=name)]


def _style_mixing_picture(model, data: Data, path: Path, title: str, rows: int = 5, columns: int = 6) -> Path:
    """StyleGAN's Figure 3 at its middle crossover: the top row from ``z_columns`` alone, the left column from
    ``z_rows`` alone (crossover at every style), inside image ``(i, j)`` with the coarse styles of row ``i`` and the
    fine ones of column ``j``."""
    z_rows, z_columns = model.draw_latents(rows), model.draw_latents(columns)
    styles = model.n_styles
    top = model.mix_styles(z_rows[:1], z_columns, 0)[0]
    left = model.mix_styles(z_rows, z_columns[:1], styles)[:, 0]
    inside = model.mix_styles(z_rows, z_columns, styles // 2)
    blank = torch.zeros_like(top[:1])
    grid = torch.cat([torch.cat([blank, top])] + [torch.cat([left[i:i + 1], inside[i]]) for i in range(rows)])
    return plots.save_image_grid(grid, data.levels, path, nrow=columns + 1,
                                 title=f"{title}: coarse styles by row, fine by column")


def _truncation_picture(model, data: Data, option: str, path: Path, title: str, columns: int = 8) -> Path:
    """Rows of samples of the same latents at decreasing truncation (``psi`` of a style-based generator, else
    BigGAN's ``truncation`` of z): variety traded for typicality."""
    values = TRUNCATION_SWEEPS[option]
    rows = []
    for value in values:
        torch.manual_seed(0)  # the same latents in every row
        rows.append(model.sample(columns, **sample_labels(model, columns), **{option: value}))
    return plots.save_image_grid(torch.cat(rows), data.levels, path, nrow=columns,
                                 title=f"{title}: {option} = " + ", ".join(map(str, values)) + " (rows)")


def _trajectory_picture(model, data: Data, path: Path, title: str, n: int = 2000) -> Path:
    """The map of points layer by layer: base samples to data space for an energy's data (coloured by starting
    position), otherwise test data to latent space (coloured by label where the data have labels)."""
    if isinstance(data.distribution, EnergyTarget):
        base = torch.randn(n, *data.shape, device=model.device, dtype=model.dtype)
        return plots.flow_trajectory(model.layer_trajectory(base, "generative"), path, title=f"{title}: z to x")
    labels = None if data.test_labels is None else data.test_labels[:n]
    return plots.flow_trajectory(model.layer_trajectory(data.test[:n].to(model.device)), path, labels=labels,
                                 title=f"{title}: x to z")


def _diffusion_picture(model, data: Data, path: Path, title: str, options: dict) -> Path:
    """A diffusion model's forward process (test data noised to each time of :data:`DIFFUSION_TIMES`, each example
    with the same noise at every time) beside its reverse process (the states of ``reverse_path`` with the sample
    ``options``, the nearest to each time), on the network's scale: images clamped to ``[-1, 1]`` and shown at the
    data's levels."""
    kind = "image" if data.is_image else "vector"
    times, n = DIFFUSION_TIMES[kind], DIFFUSION_EXAMPLES[kind]
    test = data.test[:n]
    forward = []
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        for t in times:
            torch.manual_seed(0)
            forward.append((t, model.noised(test, t).cpu()))
    walk = model.reverse_path(n, **sample_labels(model, n), **options)
    reverse = [min(walk, key=lambda state: abs(state[0] - t)) for t in times]
    reverse = [(t, x.cpu()) for t, x in reverse]
    if not data.is_image:
        return plots.diffusion_2d(forward, reverse, _bounds(data), path, reference=test, title=title)
    levels = [[(t, to_levels(x.clamp(-1, 1), data.levels)) for t, x in states] for states in (forward, reverse)]
    return plots.diffusion_images(levels[0], levels[1][::-1], data.levels, path, title=title)


def _score_field_picture(model, data: Data, path: Path, title: str) -> Path:
    """A diffusion model's score field over the data's box at the times :data:`SCORE_TIMES` (2D points: the
    network's scale is the data's)."""
    def score(points: torch.Tensor, t: float) -> torch.Tensor:
        return model.score(points.to(model.device, model.dtype), t).cpu()

    return plots.score_field(score, _bounds(data), path, times=SCORE_TIMES,
                             reference=data.test[:N_PICTURE_SAMPLES["vector"]], title=title)


def _probability_picture(model, data: Data, path: Path, title: str) -> Path:
    """The model's probability of every value of a 1D or 2D table, beside the true table where it is known."""
    table = discrete_table(model, data.levels, data.shape[0])
    reference = getattr(data.distribution, "probabilities", None)
    reference = None if reference is None else reference()
    if data.shape == (1,):
        return plots.histogram_1d(data.test[:, 0], data.levels, path, probabilities=table,
                                  reference_probabilities=reference, title=title)
    return plots.heatmap_2d_discrete(table, path, title=title, reference=reference)


def _bounds(data: Data, margin: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x_low, x_high), (y_low, y_high))``: the box that holds the data generator's mass where it is known
    (so the density plot's grid integral tells how much of the model's mass lies there), else a box around the
    central 99.8% of the test points, widened by ``margin``."""
    known = getattr(data.distribution, "bounds", None)
    if known is not None:
        return known
    low = torch.quantile(data.test, 0.001, dim=0)
    high = torch.quantile(data.test, 0.999, dim=0)
    pad = (high - low) * margin
    return tuple(zip((low - pad).tolist(), (high + pad).tolist()))
