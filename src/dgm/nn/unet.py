"""The U-Net of DDPM (Ho, Jain & Abbeel, 2020, "Denoising diffusion probabilistic models", appendix B): the
PixelCNN++ backbone (Salimans, Karpathy, Chen & Kingma, 2017) of pre-activation Wide ResNet blocks with group
normalisation (:class:`~dgm.nn.blocks.PreActivationResidualBlock`), a time embedding fed to every block, and
self-attention (:class:`~dgm.nn.attention.SelfAttention2d`) at chosen resolutions. Class labels are embedded and
the embedding added to the time embedding, as in improved DDPM (Nichol & Dhariwal, 2021) and ADM (Dhariwal &
Nichol, 2021, "Diffusion models beat GANs on image synthesis"), with one more learned embedding for "no label", the
null token of classifier-free guidance (Ho & Salimans, 2022, "Classifier-free diffusion guidance", §3.2).

With ``L = len(multipliers)`` levels, level ``ℓ`` at resolution ``H/2^ℓ`` with ``c_ℓ = width·multipliers[ℓ]``
channels, ``B = blocks_per_level``, ``Res`` a residual block, ``A_ℓ`` an attention block at the levels listed in
``attention_levels`` (the identity elsewhere) and a stack of skips::

    e = MLP(sinusoidal(t)) + E[y]                           (4·width features; y = n_classes, the null label, if none)
    h = conv₃ₓ₃(x) → width channels                          push h
    down, ℓ = 0 … L−1:   if ℓ > 0:  h = Downsample(h)        push h
                         B times:   h = A_ℓ(Res(h, e))        push h       (c_ℓ channels)
    middle:              h = Res(A(Res(h, e)), e)
    up, ℓ = L−1 … 0:     B+1 times: h = A_ℓ(Res([h, pop()], e))            (channels concatenated; c_ℓ channels)
                         if ℓ > 0:  h = Upsample(h)
    output = conv₃ₓ₃(SiLU(GroupNorm(h))) → channels_out

The stack holds ``1 + L·B + (L−1) = L·(B+1)`` skips, each popped by one of the ``L·(B+1)`` blocks of the way up.
Downsampling takes ``⌈H/2⌉`` rows (28 → 14 → 7 → 4); where it rounded up, the doubled map has one row (or column)
too many and is cropped to the skip's size at its end, which keeps the alignment of the way down (row ``j`` reads
row ``⌊j/2⌋`` of the smaller map, whose convolution was centred on row ``2⌊j/2⌋``).

``patch = p > 1`` folds every ``p×p`` block of pixels into channels first (space-to-depth, PyTorch's
``pixel_unshuffle``; the "patch size" of vision transformers and of DiT, Peebles & Xie, 2023) and unfolds the
output the same way, so the U-Net above runs on ``(C·p², H/p, W/p)``: a level of the same width costs ``p²`` times
fewer operations. For MNIST on a CPU, ``p = 2`` with width 64 and multipliers (1, 1) (1 133 636 parameters, the
size of the width-32 net below) trained 3.4 times as many steps per second in bf16 (0.23 against 0.78 s per batch
of 64, one thread).

The output convolution starts at zero, so the network starts at output 0 (DDPM's ``init_scale=0``); so do the last
convolution of every residual block and the output projection of every attention block, which therefore start as
their shortcuts.

Sizes (one channel in and out, attention at the last level): width 32, multipliers (1, 2, 2), 2 blocks per level
(the defaults): 1 623 169 parameters; 1 block per level: 1 112 801; width 64: 6 469 889. DDPM's CIFAR-10 net (width
128, multipliers (1, 2, 2, 2), 2 blocks, attention at 16x16 (``attention_levels = (1,)``), 32 groups, 3 channels):
35 746 307 (DDPM reports 35.7 million). Class conditioning adds ``(n_classes + 1)·4·width``. A forward and backward
pass of 64 images of 28x28 on one CPU thread took 1.2 s with the defaults, 0.85 s with 1 block per level.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dgm.core import check_integer, check_labels
from dgm.nn.attention import SelfAttention2d
from dgm.nn.blocks import Downsample, PreActivationResidualBlock, Upsample, group_norm
from dgm.nn.embedding import TimeEmbedding


class UNetBlock(nn.Module):
    """``A(Res(h, e))``: a residual block ``channels_in`` → ``channels_out`` taking the embedding ``e``, followed by
    self-attention where ``attention`` (else nothing)."""

    def __init__(self, channels_in: int, channels_out: int, embedding_dim: int, attention: bool, heads: int,
                 dropout: float, groups: int):
        super().__init__()
        self.residual = PreActivationResidualBlock(channels_in, channels_out, embedding_dim, dropout, groups)
        self.attention = SelfAttention2d(channels_out, heads, groups) if attention else nn.Identity()

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        return self.attention(self.residual(h, embedding))


def check_integers(values: Sequence[int], name: str, minimum: int, maximum: int | None = None) -> list[int]:
    """``values`` as a list of integers in ``minimum … maximum``, else ``ValueError`` naming ``name``."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ValueError(f"{name} must be a list of integers, got {values!r}")
    values = [check_integer(value, f"every entry of {name}", minimum) for value in values]
    if maximum is not None and any(value > maximum for value in values):
        raise ValueError(f"{name} must hold level indices 0..{maximum} (one per entry of multipliers), got {values}")
    return values


class UNet(nn.Module):
    """The network of the module docstring: ``(N, channels_in, H, W)``, times ``(N,)`` and optional class labels
    ``(N,)`` → ``(N, channels_out, H, W)`` (``channels_out`` defaults to ``channels_in``, as for a noise
    prediction ``ε̂(x_t, t)``). Times are any real numbers, embedded as they come: the caller scales them (DDPM's
    integer steps, or ``1000·t`` for ``t ∈ [0, 1]``). ``n_classes`` makes the network class-conditional; label
    ``n_classes`` (or ``labels=None``) means "no label"."""

    def __init__(self, channels_in: int, channels_out: int | None = None, width: int = 32,
                 multipliers: Sequence[int] = (1, 2, 2), blocks_per_level: int = 2,
                 attention_levels: Sequence[int] = (2,), heads: int = 1, dropout: float = 0.0, groups: int = 8,
                 n_classes: int | None = None, patch: int = 1):
        super().__init__()
        self.channels_in = check_integer(channels_in, "channels_in", 1)
        channels_out = channels_in if channels_out is None else check_integer(channels_out, "channels_out", 1)
        self.patch = check_integer(patch, "patch", 1)
        if check_integer(width, "width", 2) % 2:
            raise ValueError(f"width must be even (the sinusoidal time embedding has width features), got {width}")
        multipliers = check_integers(multipliers, "multipliers", 1)
        if not multipliers:
            raise ValueError("multipliers must list at least one level, such as (1, 2, 2)")
        attention_levels = set(check_integers(attention_levels, "attention_levels", 0, len(multipliers) - 1))
        check_integer(blocks_per_level, "blocks_per_level", 1)
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 1)
        embedding_dim = 4 * width
        self.time = TimeEmbedding(width, embedding_dim)
        self.classes = None if n_classes is None else nn.Embedding(n_classes + 1, embedding_dim)

        def block(channels_in: int, channels_out: int, attention: bool) -> UNetBlock:
            return UNetBlock(channels_in, channels_out, embedding_dim, attention, heads, dropout, groups)

        self.input = nn.Conv2d(channels_in * patch ** 2, width, 3, padding=1)
        skips, channels = [width], width
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for level, multiplier in enumerate(multipliers):
            if level:
                self.downsample.append(Downsample(channels))
                skips.append(channels)
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(block(channels, width * multiplier, level in attention_levels))
                channels = width * multiplier
                skips.append(channels)
            self.down.append(blocks)
        self.middle = nn.ModuleList([block(channels, channels, True), block(channels, channels, False)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()  # from the lowest resolution up
        for level in reversed(range(len(multipliers))):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level + 1):
                blocks.append(block(channels + skips.pop(), width * multipliers[level], level in attention_levels))
                channels = width * multipliers[level]
            self.up.append(blocks)
            if level:
                self.upsample.append(Upsample(channels))
        last = nn.Conv2d(channels, channels_out * patch ** 2, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.output = nn.Sequential(group_norm(channels, groups), nn.SiLU(), last)
        self.to(memory_format=torch.channels_last)  # pixels with their channels side by side: 12% faster on CPU

    def embedding(self, t: Tensor, labels: Tensor | None) -> Tensor:
        """``e = MLP(sinusoidal(t)) + E[y]``, ``(N, 4·width)``, with the null label ``y = n_classes`` if none given."""
        e = self.time(t)
        if self.classes is None:
            if labels is not None:
                raise ValueError("this UNet is not class-conditional (build it with n_classes): it takes no labels")
            return e
        if labels is None:
            return e + self.classes.weight[self.n_classes]
        return e + self.classes(check_labels(labels, len(t), self.n_classes + 1))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels_in:
            raise ValueError(f"x must have shape (N, {self.channels_in}, H, W), got {tuple(x.shape)}")
        if t.shape != (len(x),):
            raise ValueError(f"t must hold one time per example, shape ({len(x)},), got {tuple(t.shape)}")
        if x.shape[-2] % self.patch or x.shape[-1] % self.patch:
            raise ValueError(f"patch {self.patch} must divide the image's height and width, got {tuple(x.shape[-2:])}")
        e = self.embedding(t, labels)
        h = self.input(nn.functional.pixel_unshuffle(x, self.patch).contiguous(memory_format=torch.channels_last))
        skips = [h]
        for level, blocks in enumerate(self.down):
            if level:
                h = self.downsample[level - 1](h)
                skips.append(h)
            for block in blocks:
                h = block(h, e)
                skips.append(h)
        for block in self.middle:
            h = block(h, e)
        for level, blocks in enumerate(self.up):
            if level:
                height, width = skips[-1].shape[-2:]
                h = self.upsample[level - 1](h)[..., :height, :width]
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), e)
        return nn.functional.pixel_shuffle(self.output(h), self.patch)
