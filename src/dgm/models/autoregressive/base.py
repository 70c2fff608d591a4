"""The shared base of autoregressive models of discrete images: exact likelihood, raster-scan generation.

An image ``x`` of shape ``(C, H, W)`` with values ``0..levels-1`` is factorised in raster-scan order, row by row and
within a row from left to right, and within a pixel over its colour channels R, then G, then B (van den Oord,
Kalchbrenner & Kavukcuoglu, 2016a, eqs. 1–2 and §3.4):

    p(x) = Π_i p(x_i | x_<i),        p(x_i | x_<i) = p(x_{i,R} | x_<i) p(x_{i,G} | x_<i, x_{i,R}) p(x_{i,B} | …).

One network pass gives the conditionals of every pixel at once (the network is causal: the parameters at pixel ``i``
depend only on what precedes ``i``), so ``log_prob`` costs one pass; sampling needs one pass per position.

**Interface for subclasses.** A subclass builds its layers after ``super().__init__(shape, levels, ...)`` and
implements

    network(x̃, labels, condition) -> (N, output.param_channels, H, W)

where ``x̃ = 2x/(levels-1) - 1`` is the image on ``[-1, 1]`` (:func:`dgm.distributions.to_interval`), ``labels``
the class indices ``(N,)`` (or ``None``) and ``condition`` a vector ``(N, D)`` or a feature map ``(N, D, H, W)`` (or
``None``), already checked against the model's ``n_classes`` and ``condition_shape``. The parameters at pixel ``i``
must depend only on pixels before ``i`` and, when ``output.channel_wise`` is true, the parameters of colour ``c``
only on colours ``< c`` of pixel ``i``.

``self.output`` is the distribution of a pixel given those parameters, a *head* of :mod:`dgm.distributions`; pass
``output=`` to ``__init__`` to replace the default :class:`~dgm.distributions.CategoricalPixels`. Any object with

- ``param_channels``: the number of parameters per pixel;
- ``log_prob(params (N, P, H, W), x (N, C, H, W)) -> (N,)``: the log-probability of each image, the pixels being
  independent given their parameters;
- ``sample(params (N, P, *positions)) -> (N, C, *positions)``: one draw per position (global torch generator);
- ``channel_wise`` (optional, ``False`` if absent): ``True`` when channel ``c``'s parameters are only valid once
  channels ``< c`` of the pixel are known (one network pass per channel when sampling); ``False`` when the
  distribution models the channels of a pixel jointly (one pass per pixel; e.g. the discretized logistic mixture
  of PixelCNN++, :mod:`dgm.distributions.logistic_mixture`)

serves.

**Cached sampling** (Ramachandran, Le Paine, Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell &
Huang, 2017). The naive sampler (:meth:`generate_naive`, also ``naive=True`` in ``sample`` and ``autocomplete``) runs
the whole network on the whole image for every position. A subclass whose layers can be evaluated one position at a
time overrides :meth:`new_cache` to return a :class:`LayerCache`, which keeps every layer's inputs at the positions
already generated; :meth:`generate` then costs a few small convolutions per position and makes the same draws, in
the same order, with the same calls to the random generator, so both samplers give the same images for one seed.

**Conditioning.** ``n_classes`` makes the model class-conditional (``labels=`` in ``loss``, ``log_prob``,
``sample``; the trainer passes the data set's labels); ``condition_shape`` ``(D,)`` or ``(D, H, W)`` lets a caller
(a VAE decoder, a VQ-VAE prior) condition on a vector or a feature map through ``condition=``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dgm.core import GenerativeModel, check_data, check_integer, check_levels
from dgm.distributions import CategoricalPixels, to_interval
from dgm.nn.conditioning import check_condition_shape

MISSING = -1  # the value that marks an unknown entry for autocomplete (the homework's convention)


class LayerCache:
    """The per-layer state of a cached sampler for a batch of images being generated (see the module docstring).

    :meth:`AutoregressiveImageModel.generate_cached` calls ``start_row(i, x)`` before row ``i``, then for each pixel
    ``(i, j)`` that it visits ``pixel(i, j, x)`` (the parameters ``(N, P)`` at the pixel, computed from the cached
    inputs and ``x``'s current values at the pixel, storing the layers' outputs there) once per sampling step, or once
    for a pixel with nothing to draw, and ``store(i, j, x)`` after the pixel is complete, to put its final value in
    the cached input (the layers' outputs at a pixel never see the value drawn last: no recomputation is needed).
    ``full_rows`` says whether every pixel of a row must be visited (its features feed the next rows) or only the
    pixels up to the row's last one with a missing entry.
    """

    full_rows: bool = True

    def start_row(self, i: int, x: Tensor) -> None:
        pass

    def pixel(self, i: int, j: int, x: Tensor) -> Tensor:
        raise NotImplementedError

    def store(self, i: int, j: int, x: Tensor) -> None:
        raise NotImplementedError


class RowPrefixCache(LayerCache):
    """Sampling that runs the network on the rows generated so far only, for a network whose row ``i`` depends on
    rows ``≤ i`` alone (its convolutions pad above and to the sides, never below, as the causal streams of
    PixelCNN++ and PixelSNAIL do), so that the rows below may be left out. The draws are those of naive sampling at
    about half its cost, for models without a per-layer cache. The network gets the whole condition and cuts a
    feature map to the rows it is given (:func:`~dgm.nn.conditioning.condition_rows`) at each resolution."""

    full_rows = False

    def __init__(self, model: AutoregressiveImageModel, labels: Tensor | None, condition: Tensor | None):
        self.model, self.labels, self.condition = model, labels, condition

    def pixel(self, i: int, j: int, x: Tensor) -> Tensor:
        return self.model.network(self.model.scaled(x[:, :, :i + 1]), self.labels, self.condition)[:, :, i, j]

    def store(self, i: int, j: int, x: Tensor) -> None:
        pass


class AutoregressiveImageModel(GenerativeModel):
    """Base of PixelCNN-like models of images ``(C, H, W)`` with ``levels`` values: see the module docstring."""

    likelihood = "exact"

    def __init__(self, shape: Sequence[int], levels: int, n_classes: int | None = None,
                 condition_shape: Sequence[int] | None = None, output=None):
        super().__init__()
        self.shape = tuple(int(size) for size in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be (channels, height, width) of an image, got {tuple(shape)}")
        self.levels = check_levels(levels, type(self).__name__)
        self.channels = self.shape[0]
        self.n_classes = None if n_classes is None else check_integer(n_classes, "n_classes", 1)
        self.condition_shape = check_condition_shape(condition_shape, self.shape)
        self.output = CategoricalPixels(self.channels, self.levels) if output is None else output

    # -- to be implemented by subclasses ------------------------------------------------------------------------
    def network(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> Tensor:
        """Parameters of every pixel's distribution ``(N, output.param_channels, H, W)`` from ``x`` on [-1, 1]."""
        raise NotImplementedError

    # -- the protocol -------------------------------------------------------------------------------------------
    def scaled(self, x: Tensor) -> Tensor:
        """The image on ``[-1, 1]``: ``2x/(levels-1) - 1``."""
        return to_interval(x, self.levels)

    def check_condition(self, n: int, labels: Tensor | None, condition: Tensor | None
                        ) -> tuple[Tensor | None, Tensor | None]:
        """``labels`` and ``condition`` for ``n`` examples, checked against ``n_classes`` and ``condition_shape``."""
        name = type(self).__name__
        if condition is None and self.condition_shape is not None:
            raise ValueError(f"this {name} is conditioned on a tensor of shape (N, "
                             f"{', '.join(map(str, self.condition_shape))}): pass condition=")
        if condition is not None and self.condition_shape is None:
            raise ValueError(f"this {name} takes no condition (build it with condition_shape)")
        labels = self.labels_of(labels, n)
        if condition is not None:
            condition = check_data(condition.to(self.device, self.dtype), self.condition_shape, None,
                                   name="condition")
            if len(condition) != n:
                raise ValueError(f"condition must hold {n} rows, one per example, got {len(condition)}")
        return labels, condition

    def conditionals(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        """The parameters of every ``p(x_i | x_<i)``, ``(N, output.param_channels, H, W)``, in one pass, for ``x`` that
        :meth:`check` passed (as ``log_prob``'s is)."""
        labels, condition = self.check_condition(len(x), labels, condition)
        return self.network(self.scaled(x), labels, condition)

    def log_prob(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        """Exact ``log p(x)`` (given ``labels`` / ``condition`` where the model takes them) in nats, ``(N,)``."""
        return self.output.log_prob(self.conditionals(x, labels, condition), x)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, condition: Tensor | None = None,
               progress: bool = False, naive: bool = False) -> Tensor:
        """``n`` images ``(n, C, H, W)``, drawn position by position in raster order (``naive``: see
        :meth:`autocomplete`)."""
        blank = torch.full((n, *self.shape), float(MISSING), device=self.device, dtype=self.dtype)
        return self.autocomplete(blank, labels, condition, progress, naive)

    @torch.no_grad()
    def autocomplete(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None,
                     progress: bool = False, naive: bool = False) -> Tensor:
        """``x`` with every entry equal to ``-1`` (:data:`MISSING`) drawn from the model given all entries before
        it in the ordering (the homework's ``PixelCNNAutoComplete``); known entries are kept. A joint pixel
        distribution (``channel_wise`` false) draws whole pixels: mark all channels of a pixel missing or none.
        ``naive=True`` uses :meth:`generate_naive` even where the model has a faster sampler."""
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a tensor of shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {type(x).__name__}")
        missing = x == MISSING
        known = check_data(torch.where(missing, 0.0, x.to(self.dtype)), self.shape, self.levels,
                           name="x (apart from its -1 entries)")
        labels, condition = self.check_condition(len(x), labels, condition)
        generate = self.generate_naive if naive else self.generate
        return generate(known.to(self.device), missing.to(self.device), labels, condition, progress)

    def new_cache(self, x: Tensor, labels: Tensor | None, condition: Tensor | None) -> LayerCache | None:
        """A :class:`LayerCache` for generating ``x``, or ``None`` (the default) where the model has none."""
        return None

    def generate(self, x: Tensor, missing: Tensor, labels: Tensor | None, condition: Tensor | None,
                 progress: bool) -> Tensor:
        """Fill the ``missing`` entries of ``x`` in place and return it: cached where the model has a cache, else
        naively."""
        cache = self.new_cache(x, labels, condition)
        if cache is None:
            return self.generate_naive(x, missing, labels, condition, progress)
        return self.generate_cached(x, missing, cache, progress)

    def generate_cached(self, x: Tensor, missing: Tensor, cache: LayerCache, progress: bool) -> Tensor:
        """Fill the ``missing`` entries of ``x`` in place, one cached evaluation per position and step."""
        steps = {(i, j): pixel_steps for i, j, pixel_steps in self.generation_order(missing)}
        last_row = max((i for i, _ in steps), default=-1)
        width = self.shape[2]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the operations on one position are tiny: more threads only add waiting
        try:
            for i in tqdm(range(last_row + 1), desc=f"{self.model_name} sampling", disable=not progress):
                cache.start_row(i, x)
                last_column = max((j for row, j in steps if row == i), default=-1)
                for j in range(width if cache.full_rows and i < last_row else last_column + 1):
                    if (i, j) not in steps:  # a known pixel: the pixels after it need its features
                        cache.pixel(i, j, x)
                    for channels in steps.get((i, j), []):
                        self.fill(x, missing, i, j, channels, self.output.sample(cache.pixel(i, j, x)))
                    cache.store(i, j, x)
        finally:
            torch.set_num_threads(threads)
        return x

    def generate_naive(self, x: Tensor, missing: Tensor, labels: Tensor | None, condition: Tensor | None,
                       progress: bool) -> Tensor:
        """Fill the ``missing`` entries of ``x`` in place: one full network pass per channel (or per pixel for a
        joint pixel distribution) at every pixel where some example has a missing entry, in raster order;
        vectorised over the examples."""
        for i, j, steps in tqdm(self.generation_order(missing), desc=f"{self.model_name} sampling",
                                disable=not progress):
            for channels in steps:
                params = self.network(self.scaled(x), labels, condition)[:, :, i, j]
                self.fill(x, missing, i, j, channels, self.output.sample(params))
        return x

    def generation_order(self, missing: Tensor) -> list[tuple[int, int, list[slice]]]:
        """The pixels ``(i, j)`` in raster order where some example has a missing entry, each with the channels
        drawn at each of its steps: one channel per step if ``output.channel_wise``, else all at once."""
        pixels = missing.any(dim=0).any(dim=0).nonzero().tolist()
        if getattr(self.output, "channel_wise", False):
            steps = [slice(c, c + 1) for c in range(self.channels)]
        else:
            steps = [slice(0, self.channels)]
        return [(i, j, steps) for i, j in pixels]

    @staticmethod
    def fill(x: Tensor, missing: Tensor, i: int, j: int, channels: slice, draw: Tensor) -> None:
        """Write ``draw`` ``(N, C)`` into the missing entries of ``channels`` at pixel ``(i, j)`` of ``x``."""
        x[:, channels, i, j] = torch.where(missing[:, channels, i, j], draw[:, channels], x[:, channels, i, j])
