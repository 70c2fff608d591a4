"""Every model family; importing this module registers them all."""
from dgm.models.autoregressive.histogram import Histogram
from dgm.models.autoregressive.made import MADE
from dgm.models.flows.realnvp import RealNVP
from dgm.models.adversarial.gan import GAN

__all__ = ["Histogram", "MADE", "RealNVP", "GAN"]
