"""Normalizing flows: bijections with log-determinants, and the model that turns a bijection into a density."""
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.coupling import Coupling, mlp_coupling
from dgm.flows.model import FlowModel
from dgm.flows.permutation import Permutation, alternating_mask, random_half_mask
from dgm.flows.transforms import Additive, Affine, ElementwiseTransform, RationalQuadraticSpline

__all__ = ["Bijection", "Compose", "Coupling", "mlp_coupling", "FlowModel", "Permutation", "alternating_mask",
           "random_half_mask", "Additive", "Affine", "ElementwiseTransform", "RationalQuadraticSpline"]
