"""dgm's VAE against pythae's VAE (Chadebec et al., 2022) at equal wall-clock time on dynamically binarized MNIST.

Both models are the same network: an MLP encoder 784-512-(2·16) and an MLP decoder 16-512-784 with Bernoulli pixels,
a standard normal prior and a diagonal Gaussian posterior (829 232 parameters each). In one process, with
``--threads`` CPU threads and the same seed:

- dgm: ``dgm.create("vae", data=data, latent_dim=16, hidden=[512])`` trained by ``dgm.training.fit`` for
  ``--minutes`` (Adam 1e-3, batch 64) with the trainer's exponential moving average of the weights
  (``ema_decay=0.999``, evaluated and exported; at 8000 steps it gives a test NLL bound 1.0 nats lower than the raw
  weights). Its seconds are the trainer's, Lightning, the average's update, its per-epoch test evaluation and
  checkpoints included.
- pythae 0.1.2: ``VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"))`` with its
  default ``Encoder_VAE_MLP`` / ``Decoder_AE_MLP``, trained for the same ``--minutes`` by a bare loop (Adam 1e-3,
  batch 64) that calls the model's ``forward(DatasetOutput(data=batch))`` and steps on its ``loss``. pythae's own
  ``TrainingPipeline`` is replaced by this loop because it has no time budget and no dynamic binarization; the loop
  favours pythae, which pays no trainer overhead. Its ``"bce"`` loss is the Bernoulli negative ELBO, per pixel
  summed and over the batch averaged, as dgm's (its default, ``"mse"``, would be a unit Gaussian on {0, 1}).

Data: ``dgm.data.load("mnist-binary-dynamic")``. Every training batch of both models is a fresh Bernoulli draw of
the grey images (``x / 255``), made by the data set's own ``train_batch`` (:class:`dgm.data.transforms.
DynamicBinarization`); batches follow a reshuffle per epoch, the incomplete last batch dropped. The test set is the
data set's one fixed draw, all 10 000 images (``--test-size`` takes the first N, for a quick check).

Evaluation, one function for both (:func:`evaluate`), in nats per image on the test set: the negative ELBO (one
draw of ``L_1``) and the importance-weighted bound ``−L_K`` (Burda et al., 2016) with ``K = --importance-samples``,
each ± its standard error over images. dgm's bound is its own ``model.log_prob(x, samples=K)``; pythae's is
:func:`importance_bound`, written here from pythae's encoder output (``embedding`` = μ, ``log_covariance`` =
log σ²) and decoder, with the prior N(0, I):

    log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, σ²),   z_k ~ N(μ, σ²),
    L_K = logsumexp_k log w_k − log K.

pythae's decoder outputs probabilities (a sigmoid after its last linear layer); ``log p(x | z)`` is computed from
the logits before that sigmoid (``binary_cross_entropy_with_logits``), the exact log-likelihood of the model, not
pythae's training loss, which clamps ``log p`` of a pixel at −100. Before the table, a sanity check printed once:
:func:`importance_bound` applied to dgm's model agrees with dgm's ``log_prob``, and applied to pythae's model with
pythae's own ``get_nll``, on a few test images within Monte Carlo error.

The evaluation with K = 1000 on all 10 000 images takes minutes per model (10 million decoder passes each).

    .venv/bin/python benchmarks/vae_pythae.py                                           # 12 minutes each, K = 1000
    .venv/bin/python benchmarks/vae_pythae.py --minutes 0.3 --test-size 500 --importance-samples 50   # a check

pythae (``pip install --no-deps pythae==0.1.2`` and ``pydantic``) is in the ``bench`` extra of pyproject.toml.
"""
from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from pythae.data.datasets import DatasetOutput
from pythae.models import VAE, VAEConfig
from torch import Tensor, nn

import dgm
from dgm.data import load
from dgm.training import fit
from dgm.training.progress import batches_per_epoch

LATENT, HIDDEN, BATCH, LR = 16, 512, 64, 1e-3
EMA_DECAY = 0.999  # dgm's trainer averages the weights; pythae has no such option
EVAL_BATCH = 100  # test images per evaluation batch
EVAL_ELEMENTS = 2 ** 24  # decoder outputs per chunk of importance samples (~64 MiB of float32 per tensor)
SANITY_IMAGES = 16
TEST_SEED = 2026
MARKERS = ("<!-- begin benchmarks/vae_pythae.py -->\n", "<!-- end benchmarks/vae_pythae.py -->\n")

Bound = Callable[[Tensor, int], Tensor]  # (images (N, 1, 28, 28), K) -> one draw of L_K per image, (N,)


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- training -----------------------------------------------------------------------------------------------------
def train_dgm(data, seconds: float, seed: int) -> tuple[nn.Module, int, float]:
    """dgm's VAE trained by ``fit`` for ``seconds`` with an EMA of its weights; also its steps and the seconds the
    trainer reports."""
    torch.manual_seed(seed)
    model = dgm.create("vae", data=data, latent_dim=LATENT, hidden=[HIDDEN])
    with tempfile.TemporaryDirectory() as directory:
        run = fit(model, data, directory, max_time=seconds, batch_size=BATCH, lr=LR, ema_decay=EMA_DECAY, seed=seed,
                  progress=False)
    return run.model.eval(), run.step, run.seconds


def pythae_model(seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce"))


def train_pythae(model: VAE, data, seconds: float, seed: int) -> tuple[VAE, int, float]:
    """pythae's VAE trained by a bare loop for ``seconds`` on batches binarized afresh; its steps and seconds."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    per_epoch = batches_per_epoch(len(data.train), BATCH)
    model.train()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        epoch, index = divmod(steps, per_epoch)
        if index == 0:
            order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed + epoch))
        batch = data.train_batch(order[index * BATCH:(index + 1) * BATCH])  # a fresh Bernoulli draw
        loss = model(DatasetOutput(data=batch)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    return model.eval(), steps, time.perf_counter() - started


# -- evaluation ---------------------------------------------------------------------------------------------------
def _standard_normal_log_density(x: Tensor) -> Tensor:
    return -0.5 * (x ** 2 + math.log(2 * math.pi))


def importance_bound(encode: Callable[[Tensor], tuple[Tensor, Tensor]], logits: Callable[[Tensor], Tensor],
                     x: Tensor, samples: int) -> Tensor:
    """One draw of ``L_K`` (``K = samples``) per image of ``x`` for a VAE with the prior N(0, I), a Gaussian posterior
    ``encode(x) = (μ, log σ²)`` and Bernoulli pixels of logits ``logits(z)`` ``(B, D)``; importance samples are
    drawn in chunks of at most ``EVAL_ELEMENTS`` decoder outputs."""
    mu, log_var = encode(x)
    flat = x.reshape(len(x), -1)
    chunk = max(1, min(samples, EVAL_ELEMENTS // flat.numel()))
    log_weights = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        noise = torch.randn(k, *mu.shape, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * log_var) * noise
        log_q = (_standard_normal_log_density(noise) - 0.5 * log_var).sum(-1)  # log N(z; μ, σ²)
        log_prior = _standard_normal_log_density(z).sum(-1)
        out = logits(z.reshape(-1, mu.shape[1])).view(k, len(x), -1)
        log_likelihood = -F.binary_cross_entropy_with_logits(out, flat.expand_as(out), reduction="none").sum(-1)
        log_weights.append(log_likelihood + log_prior - log_q)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(samples)


def dgm_parts(model) -> tuple[Callable, Callable]:
    """dgm's VAE as (μ, log σ²) and decoder logits, for :func:`importance_bound` (the sanity check)."""
    def encode(x: Tensor) -> tuple[Tensor, Tensor]:
        encoding = model.encode(x)
        return encoding.loc, 2 * encoding.log_scale
    return encode, lambda z: model.decoder.network(z).reshape(len(z), -1)


def pythae_logits(decoder: nn.Module, z: Tensor) -> Tensor:
    """The logits of ``Decoder_AE_MLP``: its layers, the last one without its final sigmoid."""
    *hidden, last = decoder.layers
    if not isinstance(last[-1], nn.Sigmoid):
        raise TypeError(f"expected pythae's default MLP decoder ending in a sigmoid, got {last}")
    for layer in hidden:
        z = layer(z)
    return last[:-1](z)


def pythae_parts(model: VAE) -> tuple[Callable, Callable]:
    def encode(x: Tensor) -> tuple[Tensor, Tensor]:
        output = model.encoder(x)
        return output.embedding, output.log_covariance
    return encode, lambda z: pythae_logits(model.decoder, z)


@torch.no_grad()
def evaluate(bound: Bound, test: Tensor, samples: int, seed: int = TEST_SEED) -> dict[str, float]:
    """−ELBO (one draw of ``L_1``) and ``−L_K`` in nats per image on ``test``, each with its standard error."""
    torch.manual_seed(seed)
    scores = {}
    for name, k in (("elbo", 1), ("nll", samples)):
        values = torch.cat([bound(batch, k).double() for batch in test.split(EVAL_BATCH)])
        scores[name], scores[f"{name}_se"] = -values.mean().item(), values.std().item() / math.sqrt(len(values))
    return scores


@torch.no_grad()
def sanity_check(dgm_model, pythae: VAE, test: Tensor, samples: int) -> list[str]:
    """The benchmark's formula against dgm's ``log_prob`` and pythae's ``get_nll`` on a few test images."""
    x = test[:SANITY_IMAGES]
    torch.manual_seed(TEST_SEED)
    lines = []
    pairs = (("dgm", "model.log_prob", lambda: dgm_model.log_prob(x, samples=samples), dgm_parts(dgm_model)),
             ("pythae", "VAE.get_nll (its log-likelihood, one image at a time)",
              lambda: torch.tensor(_pythae_get_nll_each(pythae, x, samples)), pythae_parts(pythae)))
    for name, reference_name, reference, parts in pairs:
        ours = importance_bound(*parts, x, samples).double()
        theirs = reference().double()
        gap = ours - theirs
        lines.append(f"sanity check, {name}, K={samples}, {len(x)} test images: benchmark formula "
                     f"{-ours.mean():.3f}, {reference_name} {-theirs.mean():.3f} nats (NLL bound); difference "
                     f"{gap.mean():+.3f} ± {gap.std() / math.sqrt(len(x)):.3f}")
    z = torch.randn(8, LATENT)
    probabilities = pythae.decoder(z)["reconstruction"].reshape(8, -1)
    error = (torch.sigmoid(pythae_logits(pythae.decoder, z)) - probabilities).abs().max().item()
    lines.append(f"sanity check, pythae: sigmoid(logits) vs its decoder's reconstruction, max |difference| {error:.1e}")
    return lines


def _pythae_get_nll_each(model: VAE, x: Tensor, samples: int) -> list[float]:
    """pythae's ``get_nll`` per image. It draws ``batch_size`` samples even when ``n_samples`` is smaller and
    truncates ``n_samples`` to a multiple of ``batch_size``; hence ``batch_size = min(K, 100)`` (K ≤ 100 or a
    multiple of 100 is used exactly). It returns the mean log-likelihood, despite its name."""
    return [model.get_nll(image[None], n_samples=samples, batch_size=min(samples, 100)) for image in x]


# -- the table ----------------------------------------------------------------------------------------------------
def table(rows: list[dict], samples: int, test_size: int, ratio: float, command: str, threads: int) -> str:
    lines = [f"Produced by `{command}` on {platform.node()} ({threads} CPU thread(s), torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). Dynamically binarized MNIST, each model "
             f"trained for the same wall-clock time (Adam 1e-3, batch 64); test scores in nats per image on "
             f"{test_size} test images (the data set's fixed draw), ± standard error over images. NLL: −L_K, the "
             f"importance-weighted bound with K = {samples}. dgm's seconds include its trainer (Lightning, the EMA "
             f"of the weights with decay {EMA_DECAY}, per-epoch test evaluation, checkpoints); pythae is trained by a "
             "bare loop.", "",
             f"| model | parameters | seconds | steps | ms/step | epochs | test −ELBO | test NLL (K={samples}) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['seconds']:.0f} | {r['steps']} | "
                     f"{1000 * r['seconds'] / r['steps']:.2f} | {r['epochs']:.2f} | {s['elbo']:.2f} ± "
                     f"{s['elbo_se']:.2f} | {s['nll']:.2f} ± {s['nll_se']:.2f} |")
    lines += ["", f"Step time ratio dgm / pythae: {ratio:.2f} (above 1: dgm's steps take longer)."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put ``text`` between the benchmark's markers in ``path`` (other text stays), or start the file with it."""
    begin, end = MARKERS
    old = path.read_text() if path.exists() else ""
    before, found, rest = old.partition(begin)
    after = rest.partition(end)[2] if found else old
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(before + begin + text + end + after if found else begin + text + end + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=12.0, help="training wall-clock time of each model")
    parser.add_argument("--importance-samples", type=int, default=1000, help="K of the test NLL bound")
    parser.add_argument("--test-size", type=int, default=None, help="the first N test images (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="a Markdown file that receives the table")
    arguments = parser.parse_args()
    seconds, samples = 60 * arguments.minutes, arguments.importance_samples

    data = load("mnist-binary-dynamic")
    test = data.test if arguments.test_size is None else data.test[:arguments.test_size]
    per_epoch = batches_per_epoch(len(data.train), BATCH)

    torch.set_num_threads(arguments.threads)
    dgm_model, dgm_steps, dgm_seconds = train_dgm(data, seconds, arguments.seed)
    torch.set_num_threads(arguments.threads)
    pythae = pythae_model(arguments.seed)
    print(f"parameters: dgm {parameters(dgm_model):,}, pythae {parameters(pythae):,} "
          f"(encoder {parameters(pythae.encoder):,}, decoder {parameters(pythae.decoder):,})", flush=True)
    print(f"dgm: {dgm_steps} steps in {dgm_seconds:.1f} s", flush=True)
    pythae, pythae_steps, pythae_seconds = train_pythae(pythae, data, seconds, arguments.seed)
    print(f"pythae: {pythae_steps} steps in {pythae_seconds:.1f} s", flush=True)

    for line in sanity_check(dgm_model, pythae, test, samples):
        print(line, flush=True)
    rows = []
    for name, model, bound, steps, spent in (
            ("dgm vae", dgm_model, lambda x, k: dgm_model.log_prob(x, samples=k), dgm_steps, dgm_seconds),
            ("pythae VAE", pythae, lambda x, k: importance_bound(*pythae_parts(pythae), x, k), pythae_steps,
             pythae_seconds)):
        started = time.perf_counter()
        scores = evaluate(bound, test, samples)
        print(f"{name}: evaluated in {time.perf_counter() - started:.0f} s", flush=True)
        rows.append({"model": name, "parameters": parameters(model), "seconds": spent, "steps": steps,
                     "epochs": steps / per_epoch, "scores": scores})
    ratio = (dgm_seconds / dgm_steps) / (pythae_seconds / pythae_steps)

    command = f"python benchmarks/vae_pythae.py --minutes {arguments.minutes:g} --importance-samples {samples}"
    if arguments.test_size is not None:
        command += f" --test-size {arguments.test_size}"
    command += f" --threads {arguments.threads} --seed {arguments.seed}"
    text = table(rows, samples, len(test), ratio, command, arguments.threads)
    print(text)
    if arguments.out is not None:
        write_section(arguments.out, text)
        print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
