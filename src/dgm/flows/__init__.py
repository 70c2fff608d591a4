"""Normalizing flows: bijections with log-determinants, and the model that turns a bijection into a density."""
from dgm.flows.actnorm import ActNorm
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.continuous import ContinuousFlow
from dgm.flows.conv1x1 import InvertibleConv1x1, LUInvertibleConv1x1
from dgm.flows.coupling import Coupling, mlp_coupling
from dgm.flows.dequantization import (DequantizedFlow, LogitTransform, UniformDequantizer, VariationalDequantizer,
                                     make_dequantizer)
from dgm.flows.image_coupling import channel_mask, checkerboard_mask, resnet_coupling
from dgm.flows.model import FlowModel
from dgm.flows.multiscale import MultiScale, Squeeze
from dgm.flows.permutation import Permutation, alternating_mask, random_half_mask
from dgm.flows.planar import Planar, Radial
from dgm.flows.sylvester import Sylvester
from dgm.flows.transforms import Additive, Affine, ElementwiseTransform, RationalQuadraticSpline

__all__ = ["Bijection", "Compose", "Coupling", "mlp_coupling", "FlowModel", "Permutation", "alternating_mask",
           "random_half_mask", "Additive", "Affine", "ElementwiseTransform", "RationalQuadraticSpline",
           "ActNorm", "InvertibleConv1x1", "LUInvertibleConv1x1", "Squeeze", "MultiScale", "checkerboard_mask",
           "channel_mask", "resnet_coupling", "LogitTransform", "UniformDequantizer", "VariationalDequantizer",
           "make_dequantizer", "DequantizedFlow", "Planar", "Radial", "Sylvester", "ContinuousFlow"]
