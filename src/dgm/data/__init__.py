"""Data sets, all offline: 2D toys with exact densities, 1D/2D discrete tables, images from local files."""
from dgm.data.base import Data, list_datasets, load

__all__ = ["Data", "load", "list_datasets"]
