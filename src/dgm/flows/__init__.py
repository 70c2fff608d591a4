"""Normalizing flows: bijections with log-determinants, and the model that turns a bijection into a density."""
from dgm.flows.bijection import Bijection, Compose
from dgm.flows.coupling import AffineCoupling
from dgm.flows.model import FlowModel

__all__ = ["Bijection", "Compose", "AffineCoupling", "FlowModel"]
