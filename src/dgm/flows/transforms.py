"""Elementwise monotone transforms ``y_i = τ(x_i; θ_i)``, shared by coupling and autoregressive layers.

A coupling or autoregressive layer computes parameters ``θ`` for every transformed element from the elements it may
depend on; the transform then maps each element on its own, so the layer's Jacobian is triangular and its
log-determinant is the sum of the elementwise ``log τ'(x_i; θ_i)``.

Every transform follows one interface: ``params`` has shape ``(N, k, *shape)`` for inputs ``(N, *shape)``, where
``k = params_per_element``; ``forward(x, params)`` returns ``(y, log τ'(x))`` and ``inverse(y, params)`` returns
``(x, log (τ⁻¹)'(y))``, both elementwise with the shape of the input. With all parameters zero every transform is the
identity, so a layer whose conditioner's last layer starts at zero starts as the identity.

* :class:`Additive`: ``y = x + t`` (NICE, Dinh, Krueger & Bengio, 2015, eq. 5), volume preserving.
* :class:`Affine`: ``y = x · exp(s) + t`` (RealNVP, Dinh et al., 2017, eq. 6) with a soft-clamped log-scale.
* :class:`RationalQuadraticSpline`: the monotone rational-quadratic spline of Durkan, Bekasov, Murray & Papamakarios
  (2019), "Neural Spline Flows", §3.1, with identity (linear) tails outside ``[-B, B]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ElementwiseTransform(nn.Module):
    """``y_i = τ(x_i; θ_i)``, strictly increasing in ``x_i``; see the module docstring for the interface."""

    params_per_element: int

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(τ(x; θ), log τ'(x; θ))``, elementwise."""
        raise NotImplementedError

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(τ⁻¹(y; θ), log (τ⁻¹)'(y; θ))``, elementwise."""
        raise NotImplementedError


class Additive(ElementwiseTransform):
    """NICE's additive coupling law ``y = x + t``: one parameter per element, log-derivative 0."""

    params_per_element = 1

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        return x + params[:, 0], torch.zeros_like(x)

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        return y - params[:, 0], torch.zeros_like(y)


class Affine(ElementwiseTransform):
    """``y = x · exp(s) + t`` with ``s = c · tanh(r / c)``: parameters ``(r, t)`` per element, ``c = max_log_scale``.

    The soft clamp leaves ``s ≈ r`` near zero, so it does not slow early training, while each scale stays in
    ``[e^(−c), e^c]`` however large the raw log-scale ``r`` grows. ``max_log_scale=None`` leaves ``s = r`` unbounded,
    as RealNVP's eq. 6 is written, for a layer whose optimum may lie beyond any fixed ``c`` (Glow's learned prior,
    :mod:`dgm.models.flows.glow`): where a clamp binds, its gradient vanishes and Adam drives ``r`` on without end.
    """

    params_per_element = 2

    def __init__(self, max_log_scale: float | None = 2.0):
        super().__init__()
        if max_log_scale is not None and not max_log_scale > 0:
            raise ValueError(f"max_log_scale must be positive or None, got {max_log_scale}")
        self.max_log_scale = max_log_scale

    def _log_scale_and_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw_log_scale, shift = params.unbind(dim=1)
        if self.max_log_scale is None:
            return raw_log_scale, shift
        return self.max_log_scale * torch.tanh(raw_log_scale / self.max_log_scale), shift

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(params)
        return x * torch.exp(log_scale) + shift, log_scale

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(params)
        return (y - shift) * torch.exp(-log_scale), -log_scale

    def extra_repr(self) -> str:
        return f"max_log_scale={self.max_log_scale}"


class OneSidedAffine(Affine):
    """``y = x · exp(s) + t`` with an expansion bound and no contraction bound: ``c = max_log_scale`` and

        e^(−s) = e^(−c) + (1 − e^(−c)) · e^(−r),

    the inverse scale a mixture of ``e^(−c)`` and ``e^(−r)``. So ``s = 0`` at ``r = 0`` (zero parameters give the
    identity), ``s ≤ c`` as with :class:`Affine`'s soft clamp, and ``s → r − log(1 − e^(−c))`` with
    ``ds/dr → 1`` as ``r → −∞``: the layer contracts as far as the data ask, and no clamp binds there to let Adam
    drive ``r`` on through a vanishing gradient. Glow's own law, ``scale = σ(r + 2)`` (Kingma & Dhariwal, 2018,
    official code), is of this family with ``c = log(1 + e^(−2)) ≈ 0.127`` after division by ``σ(2)``.
    """

    def __init__(self, max_log_scale: float = 2.0):
        if max_log_scale is None:
            raise ValueError("OneSidedAffine needs max_log_scale, its bound on expansion; got None")
        super().__init__(max_log_scale)

    def _log_scale_and_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw_log_scale, shift = params.unbind(dim=1)
        c = self.max_log_scale
        log_inverse_scale = torch.logaddexp(torch.full_like(raw_log_scale, -c),
                                            math.log1p(-math.exp(-c)) - raw_log_scale)
        return -log_inverse_scale, shift


class RationalQuadraticSpline(ElementwiseTransform):
    """Monotone rational-quadratic spline on ``[-B, B]`` with ``K = bins`` bins, the identity outside.

    Parameters per element (``k = 3K − 1``): ``K`` unnormalised bin widths, ``K`` bin heights (each through a
    softmax, then at least the fraction ``min_bin`` of ``2B``) and ``K − 1`` interior knot derivatives
    (``min_derivative + softplus``, shifted so that a zero parameter gives derivative 1); the derivatives at ``±B``
    are 1 so that the spline joins the linear tails smoothly. In bin ``k`` with knots ``(x_k, y_k)``, width
    ``w_k``, height ``h_k``, slope ``s_k = h_k / w_k``, knot derivatives ``d_k, d_{k+1}`` and
    ``ξ = (x − x_k) / w_k`` (Durkan et al., 2019, eqs. 4 and 5, and appendix A):

        y = y_k + h_k (s_k ξ² + d_k ξ(1 − ξ)) / (s_k + (d_{k+1} + d_k − 2 s_k) ξ(1 − ξ))
        dy/dx = s_k² (d_{k+1} ξ² + 2 s_k ξ(1 − ξ) + d_k (1 − ξ)²) / (s_k + (d_{k+1} + d_k − 2 s_k) ξ(1 − ξ))²

    and the inverse solves the quadratic ``a ξ² + b ξ + c = 0`` by the numerically stable root ``ξ = 2c / (−b − √(b² −
    4ac))`` (eqs. 6-8). The bin of each point is found by ``searchsorted`` on the knots, for all elements at once.
    """

    def __init__(self, bins: int = 8, bound: float = 3.0, min_bin: float = 1e-3, min_derivative: float = 1e-3):
        super().__init__()
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}")
        if not 0 <= min_bin * bins < 1:
            raise ValueError(f"min_bin must lie in [0, 1/bins), got {min_bin} with {bins} bins")
        if not 0 < min_derivative < 1:
            raise ValueError(f"min_derivative must lie in (0, 1), got {min_derivative}")
        self.bins, self.bound, self.min_bin, self.min_derivative = bins, bound, min_bin, min_derivative
        self.params_per_element = 3 * bins - 1
        # softplus(0 + shift) = 1 - min_derivative: zero parameters make every knot derivative 1
        self.derivative_shift = math.log(math.expm1(1 - min_derivative))

    def extra_repr(self) -> str:
        return f"bins={self.bins}, bound={self.bound}"

    def _knots(self, raw: Tensor) -> Tensor:
        """Knot positions ``-B = k_0 < … < k_K = B`` (last axis) from unnormalised bin sizes ``(…, K)``; the ends
        are set exactly, not summed, so that the spline meets its tails without a gap."""
        sizes = self.min_bin + (1 - self.min_bin * self.bins) * torch.softmax(raw, dim=-1)
        inner = torch.cumsum(sizes[..., :-1], dim=-1)
        return F.pad(F.pad(2 * self.bound * inner - self.bound, (1, 0), value=-self.bound), (0, 1), value=self.bound)

    def _spline(self, params: Tensor, values: Tensor, inverse: bool) -> tuple[Tensor, ...]:
        """The knots and derivatives of the bin that holds each of ``values`` (in x for forward, y for inverse)."""
        params = params.movedim(1, -1).contiguous()
        knots = self._knots(params[..., :2 * self.bins].unflatten(-1, (2, self.bins)))
        derivatives = self.min_derivative + F.softplus(params[..., 2 * self.bins:] + self.derivative_shift)
        table = torch.cat([knots, F.pad(derivatives, (1, 1), value=1.0).unsqueeze(-2)], dim=-2)  # (…, 3, K + 1)
        search = knots[..., 1, 1:-1] if inverse else knots[..., 0, 1:-1]
        bin_index = torch.searchsorted(search.contiguous(), values[..., None].contiguous(), right=True)
        ends = torch.cat([bin_index, bin_index + 1], dim=-1)[..., None, :].expand(*table.shape[:-1], 2)
        at_ends = table.gather(-1, ends)  # (…, 3, 2): rows x, y and derivative, columns the bin's two ends
        (x_low, x_high), (y_low, y_high), (d_low, d_high) = (row.unbind(-1) for row in at_ends.unbind(-2))
        return x_low, y_low, x_high - x_low, y_high - y_low, d_low, d_high

    @staticmethod
    def _log_derivative(xi: Tensor, slope: Tensor, d_low: Tensor, d_high: Tensor) -> Tensor:
        """``log dy/dx`` at the relative position ``ξ`` of a bin (eq. 5)."""
        between = xi * (1 - xi)
        numerator = slope ** 2 * (d_high * xi ** 2 + 2 * slope * between + d_low * (1 - xi) ** 2)
        denominator = slope + (d_high + d_low - 2 * slope) * between
        return torch.log(numerator) - 2 * torch.log(denominator)

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        inside = (x >= -self.bound) & (x <= self.bound)
        x_in = x.clamp(-self.bound, self.bound)
        x_low, y_low, width, height, d_low, d_high = self._spline(params, x_in, inverse=False)
        slope = height / width
        xi = (x_in - x_low) / width
        between = xi * (1 - xi)
        y_in = y_low + height * (slope * xi ** 2 + d_low * between) / (slope + (d_high + d_low - 2 * slope) * between)
        log_derivative = self._log_derivative(xi, slope, d_low, d_high)
        return torch.where(inside, y_in, x), torch.where(inside, log_derivative, torch.zeros_like(x))

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        inside = (y >= -self.bound) & (y <= self.bound)
        y_in = y.clamp(-self.bound, self.bound)
        x_low, y_low, width, height, d_low, d_high = self._spline(params, y_in, inverse=True)
        slope = height / width
        rise = y_in - y_low
        curvature = d_high + d_low - 2 * slope
        a = height * (slope - d_low) + rise * curvature
        b = height * d_low - rise * curvature
        c = -slope * rise
        xi = (2 * c / (-b - torch.sqrt((b ** 2 - 4 * a * c).clamp(min=0)))).clamp(0, 1)
        x_in = x_low + xi * width
        log_derivative = -self._log_derivative(xi, slope, d_low, d_high)
        return torch.where(inside, x_in, y), torch.where(inside, log_derivative, torch.zeros_like(y))


TRANSFORMS = ("additive", "affine", "spline")


def elementwise_transform(name: str, max_log_scale: float = 2.0, bins: int = 8, bound: float = 3.0
                          ) -> ElementwiseTransform:
    """The transform called ``name`` (one of :data:`TRANSFORMS`) with its options, for models' JSON-able arguments."""
    if name == "additive":
        return Additive()
    if name == "affine":
        return Affine(max_log_scale)
    if name == "spline":
        return RationalQuadraticSpline(bins, bound)
    raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {name!r}")
