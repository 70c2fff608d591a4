"""Run folders: how ``dgm evaluate``, ``dgm sample`` and ``dgm report`` read what ``fit`` wrote."""
from __future__ import annotations

from pathlib import Path

import torch

from dgm import plots
from dgm.checkpoint import load_model, read_json, write_json
from dgm.core import sample_labels
from dgm.data.base import Data, load
from dgm.metrics.likelihood import log_likelihoods, nll_summary
from dgm.metrics.quality import model_quality

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
N_PICTURE_SAMPLES = {"image": 64, "vector": 4000, "sequence": 4}
REVERSE_KL_SAMPLES = 20000  # samples of q behind the reported KL(q ‖ p) of a reverse-KL fit


def metrics_files(directory: str | Path) -> list[Path]:
    """The CSV logs of a run, one per training part (a resumed run adds a part), in order."""
    return sorted((Path(directory) / "logs").glob("csv-*/metrics.csv"), key=lambda p: int(p.parent.name[4:]))


def read_run(directory: str | Path) -> dict:
    """The run's ``run.json``; a folder without one is not a run folder."""
    path = Path(directory) / RUN_FILE
    if not path.exists():
        raise ValueError(f"{directory} is not a run folder (no {RUN_FILE}); train one with `dgm train`")
    return read_json(path)


def run_data(directory: str | Path) -> Data:
    """The data set the run was trained on, rebuilt from its name and options."""
    record = read_run(directory)
    return load(record["data"], **record["data_options"])


def data_entropy(data: Data) -> float | None:
    """The exact differential (or discrete) entropy of the data generator in nats, where it is known."""
    entropy = getattr(data.distribution, "entropy", None)
    return None if entropy is None else entropy()


def evaluate_run(directory: str | Path, batch_size: int = 1000, progress: bool = False,
                 sample_quality: dict | None = None, importance_samples: int | None = None) -> dict:
    """Test NLL (nats/example) and bits/dim of a trained run, written to and returned as ``metrics.json``;
    with ``sample_quality`` (options of :func:`dgm.metrics.quality.model_quality`, ``{}`` for its defaults) also
    FID, KID, IS, precision/recall, density/coverage or mode coverage of the model's samples. ``importance_samples``
    tightens a bound with that many importance samples (see :func:`~dgm.metrics.likelihood.log_likelihoods`)."""
    directory = Path(directory)
    model, data = load_model(directory), run_data(directory)
    metrics: dict = {"model": model.model_name, "data": data.name}
    if model.likelihood is None:
        metrics["likelihood"] = None
    else:
        labels = None if model.n_classes is None else data.test_labels
        log_p = log_likelihoods(model, data.test, batch_size=batch_size, progress=progress, labels=labels,
                                importance_samples=importance_samples)
        metrics |= nll_summary(log_p, data.dim, model.likelihood)
        if importance_samples is not None:
            metrics["importance_samples"] = importance_samples
    entropy = data_entropy(data)
    if entropy is not None:
        metrics["entropy_nats"] = entropy
    if getattr(model, "target", None) is not None:  # a reverse-KL fit: its KL(q ‖ p) from fresh samples
        with torch.no_grad():
            terms = torch.cat([model.reverse_kl_terms(batch_size) for _ in range(REVERSE_KL_SAMPLES // batch_size)])
        metrics["reverse_kl_nats"] = terms.mean().item()
        metrics["reverse_kl_stderr"] = (terms.std() / len(terms) ** 0.5).item()
    if sample_quality is not None:
        metrics["sample_quality"] = model_quality(model, data, progress=progress, **sample_quality)
    record = read_run(directory)
    metrics["train_seconds"] = record.get("seconds")
    write_json(directory / METRICS_FILE, metrics)
    return metrics


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


@torch.no_grad()
def write_pictures(model, data: Data, directory: Path) -> list[Path]:
    """``samples.png``; where they apply the model's density, latent space and probability table beside the
    truth; and ``curves.png``, the training curves."""
    directory = Path(directory)
    name = f"{model.model_name} on {data.name}"
    n = N_PICTURE_SAMPLES["image" if data.is_image else "sequence" if is_sequence(data) else "vector"]
    samples = model.sample(n, **sample_labels(model, n))
    written = [save_samples_picture(samples, data, directory / "samples.png", title=f"samples of {name}")]
    if data.levels is None and data.shape == (2,) and model.likelihood is not None:
        target = getattr(model, "target", None)  # the density a reverse-KL fit aims at, drawn beside the model's
        density_plot, _ = plots.density_2d(model.log_prob, _bounds(data), directory / "density.png",
                                           title=f"density of {name}",
                                           reference=None if target is None else target.log_prob)
        written.append(density_plot)
    if data.levels is None and data.shape == (2,) and hasattr(model, "transform"):
        latents = model.transform(data.test[:n])
        labels = None if data.test_labels is None else data.test_labels[:len(latents)]
        written.append(plots.latent_scatter(latents, directory / "latent.png", labels=labels,
                                            title=f"latent space of {name}"))
    if data.levels is None and data.shape == (2,) and hasattr(model, "trajectory"):
        written.append(_trajectory_picture(model, data, directory / "trajectory.png", title=name))
    if data.levels is not None and data.shape in ((1,), (2,)) and model.likelihood == "exact":
        written.append(_probability_picture(model, data, directory / "probabilities.png", title=name))
    logs = metrics_files(directory)
    if logs:
        written.append(plots.training_curves(logs, directory / "curves.png"))
    return written


def _trajectory_picture(model, data: Data, path: Path, title: str, n: int = 2000) -> Path:
    """The flow of points layer by layer: base samples to data space for a reverse-KL fit (coloured by starting
    position), otherwise test data to latent space (coloured by label where the data have labels)."""
    if getattr(model, "target", None) is not None:
        base = torch.randn(n, *data.shape, device=model.device, dtype=model.dtype)
        return plots.flow_trajectory(model.trajectory(base, "generative"), path, title=f"{title}: z to x")
    labels = None if data.test_labels is None else data.test_labels[:n]
    return plots.flow_trajectory(model.trajectory(data.test[:n].to(model.device)), path, labels=labels,
                                 title=f"{title}: x to z")


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
