"""How a VAE uses its latent space (lectures 4 and 7): the KL of each latent dimension, active units, ELBO surgery and
posterior collapse, measured on a data set ``x_1 … x_N`` with the encoder's posteriors ``q(z | x_n)``.

- **KL per dimension.** For a diagonal Gaussian posterior and the prior ``N(0, I)`` the KL term of the ELBO splits
  over the latent dimensions, ``KL(q(z | x) ‖ p(z)) = Σ_j KL(q(z_j | x) ‖ N(0, 1))``, each in closed form (Kingma &
  Welling, 2014, appendix B; :func:`dgm.distributions.normal_kl`). We report ``(1/N) Σ_n KL(q(z_j | x_n) ‖ p(z_j))``.
  For a flow posterior or any other prior (mixture, VampPrior, flow) ``q`` or ``p`` does not factorise over the
  dimensions and the KL of one dimension is undefined: only the whole KL is reported, a Monte Carlo estimate.
- **Active units** (Burda, Grosse & Salakhutdinov, 2016, "Importance Weighted Autoencoders", §5.2): the activity of
  latent unit ``u`` is the variance over the data of its posterior mean,

      A_u = Cov_x(E_{q(u | x)}[u]),

  and the unit is active when ``A_u > 10⁻²``. A unit whose posterior mean does not move with ``x`` carries no
  information about ``x``.
- **ELBO surgery** (Hoffman & Johnson, 2016, "ELBO surgery: yet another way to carve up the variational evidence lower
  bound", §2): with the aggregate posterior ``q(z) = (1/N) Σ_n q(z | x_n)``, the average KL term of the ELBO is

      (1/N) Σ_n KL(q(z | x_n) ‖ p(z)) = I_q[x, z] + KL(q(z) ‖ p(z)),
      I_q[x, z] = E_{q(x, z)}[log q(z | x) − log q(z)],   q(x, z) = (1/N) Σ_n δ(x − x_n) q(z | x),

  the mutual information between the index of an example and its code (``0 ≤ I ≤ log N``) plus the marginal KL,
  how far the aggregate posterior lies from the prior. A collapsed posterior has ``I = 0``; an encoder whose
  posteriors do not overlap has ``I = log N``. We estimate ``I`` by Monte Carlo: draw ``n`` uniformly and
  ``z ~ q(z | x_n)``, and evaluate ``log q(z) = logsumexp_m log q(z | x_m) − log N`` over all ``N`` Gaussians;
  the marginal KL is the average KL minus ``I``. (Estimating ``I`` rather than the marginal KL directly gives the
  same expectation with a smaller error at both ends: each term is at most ``log N``, exactly 0 when the posterior
  does not depend on ``x`` and about ``log N`` when the posteriors are far apart.) ``log q(z | x_m)`` at a foreign
  ``z`` needs the posterior's density, which a flow posterior computes only in its normalizing direction (IAF: one
  pass per dimension): the surgery is restricted to the diagonal Gaussian posterior and is ``None`` otherwise.
- **Posterior collapse** (lecture 7; Bowman et al., 2016): the posterior of dimension ``j`` equals the prior for
  every ``x``, seen as ``KL_j ≈ 0``; we call a dimension collapsed when its average KL is below ``0.01`` nats, and
  the model collapsed when all are (without a per-dimension KL: when the whole KL is below ``0.01 · latent_dim``).

``model`` is a :class:`~dgm.models.latent.vae.VAE`: the functions read its ``encode``, ``posterior``, ``prior``,
``analytic_kl`` and ``latent_dim``. Each takes the data ``x`` ``(N, *shape)``, or their :class:`Encoding` from
:func:`encode` so that several share one pass of the encoder (which runs in batches, so that 10 000 test images fit
in memory). Monte Carlo estimates use torch's global generator; :func:`latent_diagnostics` seeds a private copy.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from dgm.distributions import normal_kl
from dgm.distributions.functional import equal_mixture_log_density, normal_log_density
from dgm.models.latent.posteriors import Encoding

ACTIVE_THRESHOLD = 0.01  # A_u above this: an active unit (Burda et al., 2016, §5.2)
COLLAPSE_THRESHOLD = 0.01  # nats: a dimension whose average KL is below this is collapsed
ENCODER_BATCH = 500  # examples per pass of the encoder
KL_SAMPLES = 8  # draws of q(z | x) per example behind a Monte Carlo KL
MEAN_SAMPLES = 32  # draws of q(z | x) per example behind a flow posterior's mean
SURGERY_SAMPLES = 2000  # draws of the aggregate posterior behind I[x, z]


@torch.no_grad()
def encode(model, x: Tensor, batch_size: int = ENCODER_BATCH) -> Encoding:
    """The posterior parameters of every example of ``x`` (checked by ``model.check``), encoded in batches."""
    if isinstance(x, Encoding):
        return x
    parts = [model.encode(batch) for batch in model.check(x).split(batch_size)]
    context = None if parts[0].context is None else torch.cat([part.context for part in parts])
    return Encoding(torch.cat([part.loc for part in parts]), torch.cat([part.log_scale for part in parts]), context)


def _batches(encoding: Encoding, size: int) -> Iterator[Encoding]:
    """The encoding of examples ``[0, size)``, ``[size, 2 size)``, …"""
    for start in range(0, len(encoding.loc), size):
        part = slice(start, start + size)
        yield Encoding(encoding.loc[part], encoding.log_scale[part],
                       None if encoding.context is None else encoding.context[part])


@torch.no_grad()
def kl_per_dimension(model, x: Tensor | Encoding) -> Tensor | None:
    """``(1/N) Σ_n KL(q(z_j | x_n) ‖ p(z_j))`` of each latent dimension ``j``, ``(latent_dim,)``, in closed form;
    ``None`` where the posterior or the prior does not factorise (``model.analytic_kl`` is false)."""
    if not model.analytic_kl:
        return None
    encoding = encode(model, x)
    return normal_kl(encoding.loc, encoding.log_scale).mean(dim=0)


@torch.no_grad()
def average_kl(model, x: Tensor | Encoding, samples: int = KL_SAMPLES) -> tuple[float, float]:
    """``(1/N) Σ_n KL(q(z | x_n) ‖ p(z))`` in nats and its Monte Carlo standard error: the closed form (error 0)
    where ``model.analytic_kl``, else the mean of ``log q(z | x_n) − log p(z)`` over ``samples`` draws
    ``z ~ q(z | x_n)`` of every example."""
    encoding = encode(model, x)
    if model.analytic_kl:
        return normal_kl(encoding.loc, encoding.log_scale).sum(dim=1).mean().item(), 0.0
    means, variances = [], []
    for part in _batches(encoding, ENCODER_BATCH):
        z, log_q = model.posterior.rsample(part, samples)  # (K, B, latent_dim), (K, B)
        terms = log_q - model.prior.log_prob(z.reshape(-1, model.latent_dim)).view_as(log_q)
        means.append(terms.double().mean(dim=0))
        variances.append(terms.double().var(dim=0) if samples > 1 else torch.full_like(means[-1], math.nan))
    n = len(encoding.loc)
    return torch.cat(means).mean().item(), (torch.cat(variances).sum() / samples).sqrt().item() / n


@torch.no_grad()
def unit_activity(model, x: Tensor | Encoding, samples: int = MEAN_SAMPLES) -> Tensor:
    """``A_u = Cov_x(E_{q(u | x)}[u])`` of each latent unit ``u``, ``(latent_dim,)`` (Burda et al., 2016, §5.2):
    the variance over the ``N`` examples of the posterior mean, the Gaussian's ``loc``. A flow posterior's mean is
    the average ``m̂_n`` of ``samples`` draws, whose noise adds ``(1 − 1/N) · mean_n s_n² / K`` (``s_n²``: the
    draws' variance, ``K = samples``) to the variance of the ``m̂_n``; it is subtracted, so the estimate is unbiased
    (and may dip below 0 for a unit that does not move)."""
    encoding = encode(model, x)
    if model.posterior.diagonal_gaussian:
        return encoding.loc.double().var(dim=0, correction=0)
    means, noise = [], []
    for part in _batches(encoding, ENCODER_BATCH):
        z = model.posterior.rsample(part, samples)[0].double()  # (K, B, latent_dim)
        means.append(z.mean(dim=0))
        noise.append(z.var(dim=0) / samples)
    means, noise = torch.cat(means), torch.cat(noise)
    return means.var(dim=0, correction=0) - (1 - 1 / len(means)) * noise.mean(dim=0)


def active_units(model, x: Tensor | Encoding, threshold: float = ACTIVE_THRESHOLD) -> int:
    """The number of latent units whose activity ``A_u`` (:func:`unit_activity`) exceeds ``threshold``."""
    return int((unit_activity(model, x) > threshold).sum())


def posterior_collapse(kl_per_dim: Tensor, threshold: float = COLLAPSE_THRESHOLD) -> dict:
    """``collapsed_dimensions``, the latent dimensions whose average KL (:func:`kl_per_dimension`) is below
    ``threshold`` nats, and ``collapsed``: whether every dimension is."""
    below = (torch.as_tensor(kl_per_dim) < threshold).nonzero().flatten().tolist()
    return {"collapsed_dimensions": below, "collapsed": len(below) == len(kl_per_dim)}


def aggregate_log_density(z: Tensor, encoding: Encoding) -> Tensor:
    """``log q(z) = logsumexp_m log q(z | x_m) − log N`` of latents ``z`` ``(S, latent_dim)`` under the mixture of
    the ``N`` diagonal Gaussians of ``encoding``, ``(S,)`` in float64
    (:func:`dgm.distributions.functional.equal_mixture_log_density`)."""
    return equal_mixture_log_density(z, encoding.loc, encoding.log_scale)


@torch.no_grad()
def elbo_surgery(model, x: Tensor | Encoding, samples: int = SURGERY_SAMPLES,
                 average: tuple[float, float] | None = None) -> dict | None:
    """Hoffman & Johnson's split of the average KL (see the module docstring), in nats, with Monte Carlo standard
    errors: ``average_kl``, ``mutual_information`` (``I_q[x, z]``, from ``samples`` draws of the aggregate
    posterior), its upper limit ``mutual_information_limit = log N``, and ``marginal_kl = average_kl − I``.
    ``average`` is the average KL and its error where already known (:func:`average_kl`). ``None`` for a flow
    posterior, whose density at a foreign ``z`` is not at hand."""
    if not model.posterior.diagonal_gaussian:
        return None
    encoding = encode(model, x)
    n = len(encoding.loc)
    kl, kl_error = average_kl(model, encoding) if average is None else average
    index = torch.randint(n, (samples,), device=encoding.loc.device)
    loc, log_scale = encoding.loc[index].double(), encoding.log_scale[index].double()
    z = loc + torch.exp(log_scale) * torch.randn_like(loc)
    terms = normal_log_density(z, loc, log_scale).sum(dim=1) - aggregate_log_density(z, encoding)
    information = terms.mean().item()
    error = terms.std().item() / math.sqrt(samples) if samples > 1 else math.nan
    return {"average_kl_nats": kl, "average_kl_stderr": kl_error,
            "mutual_information_nats": information, "mutual_information_stderr": error,
            "mutual_information_limit_nats": math.log(n),
            "marginal_kl_nats": kl - information, "marginal_kl_stderr": math.hypot(error, kl_error),
            "samples": samples}


def latent_diagnostics(model, x: Tensor, active_threshold: float = ACTIVE_THRESHOLD,
                       collapse_threshold: float = COLLAPSE_THRESHOLD, samples: int = SURGERY_SAMPLES,
                       seed: int = 0) -> dict:
    """Every diagnostic above on data ``x``, as a JSON-able dict (``None`` where one is unavailable, with the reason
    under ``unavailable``); the Monte Carlo draws come from a generator seeded with ``seed``, so the numbers are
    reproducible and torch's global generator is left as it was."""
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        encoding = encode(model, x)
        per_dimension = kl_per_dimension(model, encoding)
        kl, kl_error = average_kl(model, encoding)
        activity = unit_activity(model, encoding)
        surgery = elbo_surgery(model, encoding, samples, average=(kl, kl_error))
    if per_dimension is None:
        collapse = {"collapsed_dimensions": None, "collapsed": kl < collapse_threshold * model.latent_dim}
    else:
        collapse = posterior_collapse(per_dimension, collapse_threshold)
    unavailable = {}
    if per_dimension is None:
        unavailable["kl_per_dimension"] = ("the KL of one latent dimension is undefined when the posterior or the "
                                           "prior does not factorise (flow posterior, or a prior other than N(0, I))")
    if surgery is None:
        unavailable["elbo_surgery"] = ("log q(z | x_m) at a foreign z needs the density of a flow posterior: the "
                                       "surgery takes the diagonal Gaussian posterior")
    return {"examples": len(encoding.loc), "latent_dim": model.latent_dim,
            "kl_nats": kl, "kl_stderr": kl_error,
            "kl_per_dimension": None if per_dimension is None else per_dimension.tolist(),
            "collapse_threshold_nats": collapse_threshold, **collapse,
            "active_units": int((activity > active_threshold).sum()), "active_threshold": active_threshold,
            "unit_activity": activity.tolist(),
            "elbo_surgery": surgery, **({"unavailable": unavailable} if unavailable else {})}
