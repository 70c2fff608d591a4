"""The Gaussian mixture model, fitted by expectation-maximisation: full-batch or online (course lectures 2-3).

The model (Bishop, 2006, "Pattern Recognition and Machine Learning", §9.2, eq. 9.7) has a latent component
``k ~ Categorical(π)`` and ``x | k ~ N(μ_k, Σ_k)``:

    p(x) = Σ_k π_k N(x; μ_k, Σ_k),      log p(x) = logsumexp_k [log π_k + log N(x; μ_k, Σ_k)]     (eq. 9.14),

and the posterior of the component, the responsibility, is Bayes' rule (eqs. 9.13 and 9.23):

    r_k(x) = p(k | x) = π_k N(x; μ_k, Σ_k) / Σ_j π_j N(x; μ_j, Σ_j).

EM (§9.2.2) alternates the E-step, the responsibilities under the current parameters, and the M-step
(eqs. 9.24-9.27). Both are written here through the expected sufficient statistics, averaged over the data,

    s₀_k = ⟨r_k(x)⟩,    s₁_k = ⟨r_k(x) x⟩,    s₂_k = ⟨r_k(x) x xᵀ⟩,

from which the M-step ``θ = θ̄(s)`` reads

    π_k = s₀_k / Σ_j s₀_j,    μ_k = s₁_k / s₀_k,    Σ_k = s₂_k / s₀_k − μ_k μ_kᵀ     (eqs. 9.26, 9.24, 9.25).

``covariance="diagonal"`` keeps only the diagonal of each ``Σ_k``. A covariance can collapse onto one data point,
where the likelihood is unbounded (§9.2.1): the M-step therefore maximises over covariances whose eigenvalues are at
least a floor (1e-6 times the data's mean variance) by raising smaller eigenvalues to the floor, which is the
constrained maximiser of the M-step's objective (Ingrassia, 2004, "A likelihood-based constrained algorithm for
multivariate normal mixture models"). Each iteration still cannot lower the likelihood (a generalised EM, §9.4), and
where no eigenvalue is that small the M-step is Bishop's. EM starts from greedy k-means++ centres (Arthur &
Vassilvitskii, 2007), each component with the data's covariance around the nearest centre, and equal weights.

Online EM (Cappé & Moulines, 2009, "On-line expectation-maximization algorithm for latent data models") replaces the
averages over the data by a running average over the training batches: for the ``t``-th batch of the run

    s ← (1 − γ_t) s + γ_t ⟨E[s(x) | θ]⟩_batch,    γ_t = (t + 2)^(−0.6),    then θ = θ̄(s),

the step sizes satisfy Σ γ_t = ∞ and Σ γ_t² < ∞ (an exponent in (½, 1]). The first batch initialises the parameters
and the statistics (γ = 1). Parameters and statistics are buffers, so a checkpoint resumes exactly; nothing is
trained by gradients and ``optimizer_groups()`` is empty.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.distributions import Categorical, MultivariateNormal

from dgm.core import GenerativeModel, OptimizerGroup, check_integer, vector_dim
from dgm.models.latent.online_em import online_step_size
from dgm.registry import register_model

COVARIANCES = ("full", "diagonal")
RELATIVE_VARIANCE_FLOOR = 1e-6  # the floor of the covariances' eigenvalues, relative to the data's mean variance

Statistics = tuple[Tensor, Tensor, Tensor]  # s₀ (K,), s₁ (K, D), s₂ (K, D, D)


def floored_covariance(covariance: Tensor, floor: Tensor) -> Tensor:
    """``covariance`` (…, D, D) with its eigenvalues below ``floor`` raised to ``floor``: the covariance of largest
    Gaussian likelihood among those whose eigenvalues are at least ``floor``."""
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    return eigenvectors @ torch.diag_embed(eigenvalues.clamp_min(floor)) @ eigenvectors.mT


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` rows of ``x`` (N, D) chosen by greedy k-means++: the first uniformly, then each next one among
    ``2 + ⌊log k⌋`` candidates drawn with probability proportional to their squared distance to the nearest row
    chosen so far, the candidate that lowers the sum of those squared distances most. The candidates, suggested in
    the conclusion of Arthur & Vassilvitskii (2007) (their number is scikit-learn's), make two centres in one
    cluster rare."""
    centres = x[torch.randint(len(x), (1,), generator=generator)]
    squared_distance = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(k - 1):
        # floored, so that data with fewer distinct rows than k still gives k centres
        weights = squared_distance.clamp_min(torch.finfo(x.dtype).tiny).cpu()
        candidates = x[torch.multinomial(weights, 2 + int(math.log(k)), generator=generator)]
        candidate_distances = torch.minimum(squared_distance.unsqueeze(1), torch.cdist(x, candidates) ** 2)
        best = candidate_distances.sum(dim=0).argmin()
        centres = torch.cat([centres, candidates[best].unsqueeze(0)])
        squared_distance = candidate_distances[:, best]
    return centres


@register_model("gmm", "Gaussian mixture (Bishop 2006 §9.2), full or diagonal covariances, fitted by EM (vectors)")
class GaussianMixture(GenerativeModel):
    """A mixture of ``components`` Gaussians on vectors of shape ``(D,)``, with ``"full"`` or ``"diagonal"``
    covariances; ``seed`` seeds the k-means++ initialisation. Before any data is seen every component is
    ``N(0, I)``."""

    likelihood = "exact"

    def __init__(self, shape: tuple[int, ...], components: int = 8, covariance: str = "full", seed: int = 0):
        super().__init__()
        dim = vector_dim(shape, "the Gaussian mixture")
        k = check_integer(components, "components", 1)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
        self.diagonal = covariance == "diagonal"
        self.seed = check_integer(seed, "seed", 0)
        # the parameters θ (the first buffer is floating-point: it gives the model's dtype)
        self.register_buffer("log_weights", torch.full((k,), -math.log(k)))
        self.register_buffer("means", torch.zeros(k, dim))
        self.register_buffer("scale_tril", torch.eye(dim).expand(k, dim, dim).clone())  # Cholesky factors of Σ_k
        # the running statistics s of online EM, and what initialisation sets
        self.register_buffer("running_weight", torch.zeros(k))  # s₀
        self.register_buffer("running_sum", torch.zeros(k, dim))  # s₁
        self.register_buffer("running_square", torch.zeros(k, dim, dim))  # s₂
        self.register_buffer("variance_floor", torch.zeros(()))
        self.register_buffer("initialized", torch.tensor(False))

    # -- the model ----------------------------------------------------------------------------------------------
    def components_distribution(self) -> MultivariateNormal:
        """The ``K`` Gaussians ``N(μ_k, Σ_k)`` as one batched distribution."""
        return MultivariateNormal(self.means, scale_tril=self.scale_tril)

    def _joint_log_prob(self, x: Tensor) -> Tensor:
        """``log π_k + log N(x; μ_k, Σ_k)`` = ``log p(x, k)``, shape ``(N, K)``."""
        return self.log_weights + self.components_distribution().log_prob(x.unsqueeze(1))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, ``(N,)``: a log-sum-exp over the components (eq. 9.14)."""
        return self._joint_log_prob(x).logsumexp(dim=1)

    def posterior(self, x: Tensor) -> Tensor:
        """The responsibilities ``p(k | x)``, shape ``(N, K)``, each row summing to one (eq. 9.13)."""
        return self._joint_log_prob(self.check(x)).softmax(dim=1)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Ancestral sampling: ``k ~ Categorical(π)``, then ``x ~ N(μ_k, Σ_k)``."""
        k = Categorical(logits=self.log_weights).sample((n,))
        return MultivariateNormal(self.means[k], scale_tril=self.scale_tril[k]).sample()

    # -- EM -------------------------------------------------------------------------------------------------------
    def _expected_statistics(self, x: Tensor) -> tuple[Statistics, Tensor]:
        """The E-step: the statistics ``(s₀, s₁, s₂)`` averaged over ``x`` under the current parameters, and
        ``log p(x)`` of each example (a by-product)."""
        joint = self._joint_log_prob(x)
        log_likelihood = joint.logsumexp(dim=1)
        responsibilities = torch.exp(joint - log_likelihood.unsqueeze(1))
        n = len(x)
        statistics = (responsibilities.mean(dim=0), responsibilities.T @ x / n,
                      torch.einsum("nk,ni,nj->kij", responsibilities, x, x) / n)
        return statistics, log_likelihood

    def _maximize(self, statistics: Statistics) -> None:
        """The M-step ``θ = θ̄(s)``: weights, means and covariances from the statistics (eqs. 9.24-9.26), with the
        covariances' eigenvalues floored (see the module docstring)."""
        weight, total, square = statistics
        safe_weight = weight.clamp_min(torch.finfo(weight.dtype).tiny)  # a component no example belongs to
        means = total / safe_weight.unsqueeze(1)
        covariances = square / safe_weight[:, None, None] - means.unsqueeze(2) * means.unsqueeze(1)
        if self.diagonal:
            covariances = torch.diag_embed(covariances.diagonal(dim1=1, dim2=2))
        self.log_weights.copy_(torch.log(weight) - torch.log(weight.sum()))
        self.means.copy_(means)
        self.scale_tril.copy_(torch.linalg.cholesky(floored_covariance(covariances, self.variance_floor)))

    def _update_statistics(self, statistics: Statistics, step_size: float) -> None:
        """``s ← (1 − γ) s + γ s_new``, then the M-step ``θ = θ̄(s)``."""
        running = (self.running_weight, self.running_sum, self.running_square)
        for kept, new in zip(running, statistics):
            kept.lerp_(new, step_size)
        self._maximize(running)

    def _initialize(self, x: Tensor) -> None:
        """Means at greedy k-means++ centres of ``x``; each covariance the (floored) covariance of ``x`` around the
        nearest centre, pooled over all centres; equal weights."""
        k = len(self.means)
        if len(x) < k:
            raise ValueError(f"initialising {k} components needs at least {k} examples, got {len(x)}")
        floor = RELATIVE_VARIANCE_FLOOR * x.var(dim=0, correction=0).mean()
        self.variance_floor.copy_(floor.clamp_min(torch.finfo(x.dtype).eps))
        generator = torch.Generator().manual_seed(self.seed)
        self.means.copy_(kmeans_plus_plus(x, k, generator))
        deviation = x - self.means[torch.cdist(x, self.means).argmin(dim=1)]  # from each example's nearest centre
        covariance = floored_covariance(deviation.T @ deviation / len(x), self.variance_floor)
        if self.diagonal:
            covariance = torch.diag_embed(covariance.diagonal())
        self.scale_tril.copy_(torch.linalg.cholesky(covariance).expand_as(self.scale_tril))
        self.log_weights.fill_(-math.log(k))
        self.initialized.fill_(True)

    @torch.no_grad()
    def fit_em(self, x: Tensor, iterations: int = 100, tolerance: float = 1e-10) -> list[float]:
        """Full-batch EM on ``x`` (eqs. 9.23-9.28), from the k-means++ initialisation if no data was seen yet, else
        from the current parameters; stops after ``iterations`` or once an iteration raises the mean
        log-likelihood by less than ``tolerance`` nats. Returns the mean log-likelihood after each iteration
        (non-decreasing). The running statistics of online EM become those of ``x``."""
        x = self.check(x)
        check_integer(iterations, "iterations", 1)
        if not self.initialized:
            self._initialize(x)
        statistics, log_likelihood = self._expected_statistics(x)
        history = [log_likelihood.mean().item()]
        for _ in range(iterations):
            self._update_statistics(statistics, step_size=1.0)
            statistics, log_likelihood = self._expected_statistics(x)
            history.append(log_likelihood.mean().item())
            if history[-1] - history[-2] < tolerance:
                break
        return history[1:]

    # -- training by online EM (the trainer's hooks) ----------------------------------------------------------------
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """None: the parameters are set by EM, not by gradients."""
        return []

    @torch.no_grad()
    def training_step(self, x: Tensor, step: int) -> Iterator[tuple[None, dict[str, Tensor]]]:
        """One step of online EM on the batch ``x`` (the first batch initialises); yields ``(None, losses)``: the
        model updated itself, and ``losses["loss"]`` is the batch's mean negative log-likelihood before the
        update (after the initialisation, for the first batch)."""
        x = self.check(x)
        if self.initialized:
            step_size = online_step_size(step)
        else:
            self._initialize(x)
            step_size = 1.0
        statistics, log_likelihood = self._expected_statistics(x)
        self._update_statistics(statistics, step_size)
        yield None, {"loss": -log_likelihood.mean()}
