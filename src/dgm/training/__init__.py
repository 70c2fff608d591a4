"""The one trainer of dgm (PyTorch Lightning underneath)."""
from dgm.training.fit import Run, TrainingInterrupted, fit, seed_everything
from dgm.training.module import TrainingDiverged

__all__ = ["fit", "Run", "seed_everything", "TrainingDiverged", "TrainingInterrupted"]
