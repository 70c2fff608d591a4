"""Probabilistic PCA, an exact linear-Gaussian latent-variable model (course lectures 2-3).

The model (Tipping & Bishop, 1999, "Probabilistic principal component analysis"; Bishop, 2006, "Pattern Recognition
and Machine Learning", §12.2, eqs. 12.31-12.33) has ``M < D`` latent dimensions:

    z ~ N(0, I_M),    x = W z + μ + ε,    ε ~ N(0, σ² I_D),      W of shape (D, M).

Its marginal is Gaussian (eqs. 12.35-12.36) and its posterior too (eqs. 12.41-12.42):

    p(x) = N(x; μ, C),  C = W Wᵀ + σ² I,        p(z | x) = N(z; 𝕄⁻¹ Wᵀ (x − μ), σ² 𝕄⁻¹),  𝕄 = Wᵀ W + σ² I,

so ``log p(x)`` is exact (through a Cholesky factor of ``C``) and so is ``log p(x) = log p(x, z) − log p(z | x)``
for every ``z``: the ground truth of the bounds of variational autoencoders.

Maximum likelihood has a closed form (eqs. 12.45-12.46): ``μ`` is the sample mean and, with ``λ₁ ≥ … ≥ λ_D`` the
eigenvalues of the sample covariance ``S`` and ``U_M`` the eigenvectors of the ``M`` largest,

    σ² = (1 / (D − M)) Σ_{i > M} λ_i,      W = U_M (L_M − σ² I)^{1/2} R,   here with R = I.

EM (eqs. 12.54-12.57), summed over the data, needs only ``S`` (Tipping & Bishop, 1999, write it this way):

    W_new = S W (σ² I + 𝕄⁻¹ Wᵀ S W)⁻¹,      σ²_new = (1 / D) Tr(S − S W 𝕄⁻¹ W_newᵀ).

Online EM (Cappé & Moulines, 2009, "On-line expectation-maximization algorithm for latent data models") keeps running
averages of the sufficient statistics of the data, its mean and second moment, over the training batches: for the
``t``-th batch of the run ``s ← (1 − γ_t) s + γ_t ⟨(x, x xᵀ)⟩_batch`` with ``γ_t = (t + 2)^(−0.6)`` (the first batch
sets them, γ = 1), then takes one EM step with ``μ`` and ``S`` from the running averages. Parameters and statistics
are buffers, so a checkpoint resumes exactly; nothing is trained by gradients and ``optimizer_groups()`` is empty.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from dgm.core import GenerativeModel, OptimizerGroup, check_integer, vector_dim
from dgm.distributions.functional import normal_log_density
from dgm.models.latent.online_em import online_step_size
from dgm.registry import register_model

def data_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """The mean ``(D,)`` and the second moment ``⟨x xᵀ⟩`` ``(D, D)`` of the rows of ``x``."""
    return x.mean(dim=0), x.T @ x / len(x)


@register_model("ppca", "probabilistic PCA (Tipping & Bishop 1999), exact likelihood, closed form or EM (vectors)")
class ProbabilisticPCA(GenerativeModel):
    """Probabilistic PCA of vectors of shape ``(D,)`` with ``latent_dim`` latent dimensions (``1 ≤ M < D``). Before
    any fit, ``W`` is drawn from ``N(0, 1)`` with a generator seeded by ``seed`` (EM's starting point), ``μ = 0`` and
    ``σ² = 1``."""

    likelihood = "exact"

    def __init__(self, shape: tuple[int, ...], latent_dim: int = 1, seed: int = 0):
        super().__init__()
        dim = vector_dim(shape, "probabilistic PCA")
        check_integer(latent_dim, "latent_dim", 1)
        if latent_dim >= dim:
            raise ValueError(f"latent_dim must be smaller than the data's dimension {dim}, got {latent_dim}")
        generator = torch.Generator().manual_seed(check_integer(seed, "seed", 0))
        self.register_buffer("W", torch.randn(dim, latent_dim, generator=generator))
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("sigma2", torch.ones(()))
        # the running statistics of online EM
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_second_moment", torch.zeros(dim, dim))
        self.register_buffer("initialized", torch.tensor(False))

    # -- the model ----------------------------------------------------------------------------------------------
    def covariance(self) -> Tensor:
        """``C = W Wᵀ + σ² I``, the covariance of ``p(x)`` (eq. 12.36)."""
        return self.W @ self.W.T + self.sigma2 * torch.eye(len(self.W), dtype=self.W.dtype, device=self.W.device)

    def _m_matrix(self) -> Tensor:
        """``𝕄 = Wᵀ W + σ² I`` (eq. 12.41), ``(M, M)``; ``σ² 𝕄⁻¹`` is the posterior covariance."""
        m = self.W.shape[1]
        return self.W.T @ self.W + self.sigma2 * torch.eye(m, dtype=self.W.dtype, device=self.W.device)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log N(x; μ, C)`` in nats, ``(N,)`` (eq. 12.35)."""
        return MultivariateNormal(self.mu, covariance_matrix=self.covariance()).log_prob(x)

    def joint_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x, z) = log N(x; W z + μ, σ² I) + log N(z; 0, I)``, ``(N,)``, for latents ``z`` ``(N, M)``."""
        x = self.check(x)
        if not isinstance(z, Tensor) or z.shape != (len(x), self.W.shape[1]):
            raise ValueError(f"z must be a tensor of shape ({len(x)}, {self.W.shape[1]}), got "
                             f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
        z = z.to(x)
        log_likelihood = normal_log_density(x, z @ self.W.T + self.mu, 0.5 * torch.log(self.sigma2)).sum(dim=1)
        log_prior = normal_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
        return log_likelihood + log_prior

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``p(z | x)``: its mean ``𝕄⁻¹ Wᵀ (x − μ)`` ``(N, M)`` and its covariance ``σ² 𝕄⁻¹`` ``(M, M)``, the same for
        every ``x`` (eq. 12.42)."""
        x = self.check(x)
        m_matrix = self._m_matrix()
        mean = torch.linalg.solve(m_matrix, self.W.T @ (x - self.mu).T).T
        return mean, self.sigma2 * torch.linalg.inv(m_matrix)

    def latent_codes(self, x: Tensor) -> Tensor:
        """The posterior mean ``E[z | x]``, ``(N, M)``."""
        return self.posterior(x)[0]

    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """Ancestral sampling: ``z ~ N(0, I)``, then ``x = W z + μ + σ ε`` (without ``σ ε`` where not
        ``decoder_noise``: points on the principal subspace)."""
        return self.decode(torch.randn(n, self.W.shape[1], dtype=self.W.dtype, device=self.W.device), decoder_noise)

    @torch.no_grad()
    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """A draw of ``p(x | z) = N(W z + μ, σ² I)`` for ``z`` ``(N, M)``, or its mean ``W z + μ``."""
        mean = codes @ self.W.T + self.mu
        return mean + torch.sqrt(self.sigma2) * torch.randn_like(mean) if decoder_noise else mean

    # -- maximum likelihood -----------------------------------------------------------------------------------------
    def _remember_moments(self, mean: Tensor, second_moment: Tensor, step_size: float) -> None:
        """``s ← (1 − γ) s + γ s_new`` for the running mean and second moment; marks the model initialised."""
        self.running_mean.lerp_(mean, step_size)
        self.running_second_moment.lerp_(second_moment, step_size)
        self.initialized.fill_(True)

    def _em_step(self, mean: Tensor, covariance: Tensor) -> None:
        """``μ`` ← the data's ``mean``, then one EM step of ``W`` and ``σ²`` on the data's ``covariance`` ``S``."""
        m_matrix, s_w = self._m_matrix(), covariance @ self.W
        identity = torch.eye(len(m_matrix), dtype=m_matrix.dtype, device=m_matrix.device)
        w_new = torch.linalg.solve(self.sigma2 * identity + torch.linalg.solve(m_matrix, self.W.T @ s_w), s_w,
                                   left=False)
        sigma2_new = torch.trace(covariance - s_w @ torch.linalg.solve(m_matrix, w_new.T)) / len(self.W)
        self.mu.copy_(mean)
        self.W.copy_(w_new)
        self.sigma2.copy_(sigma2_new)

    @torch.no_grad()
    def fit_closed_form(self, x: Tensor) -> float:
        """Set ``μ``, ``W`` and ``σ²`` to the maximum-likelihood estimate on ``x`` (eqs. 12.45-12.46, R = I) and
        return its mean log-likelihood. The running statistics of online EM become those of ``x``."""
        x = self.check(x)
        m = self.W.shape[1]
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(x.T, correction=0))  # increasing eigenvalues
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        sigma2 = eigenvalues[m:].mean()
        self.mu.copy_(x.mean(dim=0))
        excess = (eigenvalues[:m] - sigma2).clamp_min(0)  # ≥ 0 but for rounding, where eigenvalues are equal
        self.W.copy_(eigenvectors[:, :m] * torch.sqrt(excess))
        self.sigma2.copy_(sigma2)
        self._remember_moments(*data_moments(x), step_size=1.0)
        return self.log_prob(x).mean().item()

    @torch.no_grad()
    def fit_em(self, x: Tensor, iterations: int = 100, tolerance: float = 1e-10) -> list[float]:
        """EM on ``x`` from the current parameters: ``μ`` becomes the sample mean, then ``W`` and ``σ²`` take EM
        steps until ``iterations`` or until a step raises the mean log-likelihood by less than ``tolerance`` nats.
        Returns the mean log-likelihood after each iteration (non-decreasing). The running statistics of online EM
        become those of ``x``."""
        x = self.check(x)
        check_integer(iterations, "iterations", 1)
        mean, covariance = x.mean(dim=0), torch.cov(x.T, correction=0)
        history = [self.log_prob(x).mean().item()]
        for _ in range(iterations):
            self._em_step(mean, covariance)
            history.append(self.log_prob(x).mean().item())
            if history[-1] - history[-2] < tolerance:
                break
        self._remember_moments(*data_moments(x), step_size=1.0)
        return history[1:]

    # -- training by online EM (the trainer's hooks) ----------------------------------------------------------------
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """None: the parameters are set by EM, not by gradients."""
        return []

    @torch.no_grad()
    def training_step(self, x: Tensor, step: int) -> Iterator[tuple[None, dict[str, Tensor]]]:
        """One step of online EM on the batch ``x``; yields ``(None, losses)``: the model updated itself, and
        ``losses["loss"]`` is the batch's mean negative log-likelihood before the update."""
        x = self.check(x)
        loss = -self.log_prob(x).mean()
        self._remember_moments(*data_moments(x), step_size=online_step_size(step) if self.initialized else 1.0)
        covariance = self.running_second_moment - torch.outer(self.running_mean, self.running_mean)
        self._em_step(self.running_mean, covariance)
        yield None, {"loss": loss}
