"""dgm: deep generative models behind one protocol, one trainer and one command line."""
from dgm.api import create, list_datasets, list_models, load
from dgm.core import AdversarialModel, GenerativeModel

__all__ = ["create", "load", "list_models", "list_datasets", "GenerativeModel", "AdversarialModel"]
__version__ = "0.1.0"
