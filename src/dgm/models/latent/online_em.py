"""Online EM (Cappé & Moulines, 2009, "On-line expectation-maximization algorithm for latent data models", §2.2),
how the exact latent models (:mod:`~dgm.models.latent.gmm`, :mod:`~dgm.models.latent.ppca`) train inside dgm's
one trainer: at the ``t``-th batch, running sufficient statistics move towards their expectation on the batch,

    s ← (1 − γ_t) s + γ_t E[s(x) | θ],        θ ← θ̄(s)   (the M-step),

with the step size ``γ_t = (t + 2)^(−0.6)``, which satisfies the Robbins–Monro conditions ``Σ γ_t = ∞`` and
``Σ γ_t² < ∞`` (an exponent in ``(1/2, 1]``). The model updates itself: its ``training_step`` yields
``(None, losses)`` and it has no optimizer groups.
"""
from __future__ import annotations

STEP_SIZE_EXPONENT = 0.6


def online_step_size(step: int) -> float:
    """The step size ``γ_t = (t + 2)^(−0.6)`` of online EM at the ``t``-th batch of the run."""
    return (step + 2) ** -STEP_SIZE_EXPONENT
