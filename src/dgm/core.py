"""The protocol that every generative model of ``dgm`` follows.

A model is a ``torch.nn.Module`` subclass of :class:`GenerativeModel`. It is built from keyword arguments that
describe the data (``shape``, and ``levels`` for discrete data) and its hyper-parameters; those arguments are recorded
in ``model.config`` so that a checkpoint can rebuild the model without pickle (see :mod:`dgm.checkpoint`).

Data convention (one for every model): a float tensor of shape ``(N, *shape)``. Discrete data (images, histograms)
hold integer values ``0 .. levels-1``; continuous data (2D toys, tabular vectors) hold any finite floats. Models that
need continuous input dequantize inside, so ``log_prob`` is always the log-probability of the data as given.

Data enters a model in one place: the protocol's methods that take data (``DATA_METHODS``) check it with
:meth:`GenerativeModel.check` before the model's own code runs, and the methods that draw samples
(``SAMPLING_METHODS``) check their number. Any floating dtype is accepted (float64 from numpy, float16) and converted
to the model's dtype and device, without a copy when they already agree; integer and boolean tensors, wrong shapes,
values outside ``0 .. levels-1``, NaN or infinite values and empty batches (0 examples) raise ``ValueError``.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

Likelihood = Literal["exact", "lower_bound"] | None
Losses = dict[str, Tensor]
Update = tuple[str, Losses]
OPTIONAL_HOOKS = ("sample_with_log_prob", "latent_codes", "decode", "latent_diagnostics", "layer_trajectory",
                  "critic_output", "mix_styles", "noised", "reverse_path", "score", "after_training")
LR_SCHEDULES = ("constant", "cosine")
# the methods whose first argument is data
DATA_METHODS = ("loss", "log_prob", "latent_codes", "critic_loss", "generator_loss", "critic_output", "noised")
SAMPLING_METHODS = ("sample", "sample_with_log_prob")  # their first argument is a number of samples
SAMPLING_MEMORY_FACTOR = 64  # sampling holds the networks' values beside the samples: this many times their size


def check_data(x: Tensor, shape: tuple[int, ...], levels: int | None, name: str = "x") -> Tensor:
    """Return ``x`` if it follows the data convention for ``shape`` and ``levels``, else raise ``ValueError``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, {', '.join(map(str, shape))}) "
                         f"(torch.as_tensor converts a numpy array), got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor (dgm keeps discrete values as floats), "
                         f"got dtype {x.dtype}")
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if levels is not None:
        if x.numel() and (x.min() < 0 or x.max() > levels - 1):
            raise ValueError(f"{name} must hold integers in 0..{levels - 1}, "
                             f"got values in [{x.min().item():g}, {x.max().item():g}]")
        if not torch.equal(x, x.round()):
            raise ValueError(f"{name} must hold integer values 0..{levels - 1} (discrete data), got fractions")
    return x


def check_integer(value, name: str, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` of at least ``minimum``, else raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def check_levels(levels, model: str, allow_continuous: bool = False) -> int | None:
    """Return ``levels``, the number of values ``0..levels-1`` of discrete data, if it is an ``int`` of at least 2
    (or ``None`` for continuous data, where ``allow_continuous``), else raise ``ValueError`` naming ``model``."""
    if allow_continuous and levels is None:
        return None
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        alternative = " (or None for continuous data)" if allow_continuous else ""
        raise ValueError(f"{model} models discrete data with values 0..levels-1: levels must be an integer >= 2"
                         f"{alternative}, got {levels!r}")
    return levels


def vector_dim(shape: Sequence[int], model: str) -> int:
    """``D`` of vector data of shape ``(D,)`` with ``D ≥ 2`` (what couplings of vectors need), else ``ValueError``."""
    if len(shape) != 1 or shape[0] < 2:
        raise ValueError(f"{model} takes vectors of shape (D,) with D >= 2, got shape {tuple(shape)}")
    return shape[0]


def check_sample_count(n) -> int:
    """Return ``n`` if it is a positive ``int`` (a number of samples), else raise ``ValueError``."""
    return check_integer(n, "the number of samples", 1)


def memory_size(device: torch.device) -> int:
    """Bytes of memory of ``device``: a GPU's own, else the machine's RAM."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_sample_memory(n: int, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> int:
    """Return ``n`` if ``n`` samples of ``shape`` can be drawn in one call, else raise ``ValueError``: the samples,
    with the networks' values that sampling holds beside them (``SAMPLING_MEMORY_FACTOR`` times their size), must
    fit in the memory of ``device``."""
    memory = memory_size(device)
    limit = memory // (SAMPLING_MEMORY_FACTOR * math.prod(shape) * dtype.itemsize)
    if n > limit:
        raise ValueError(f"the number of samples must be at most {limit:,} in one call (what the "
                         f"{memory / 2**30:.0f} GiB of {device.type} allow for samples of shape {tuple(shape)}), "
                         f"got {n:,}; draw them in batches")
    return n


AUTOCAST_TYPES = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The arithmetic of Lightning's ``precision`` (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``) outside
    training: ``torch.autocast`` to the half type on ``device``, disabled for ``"32-true"``. A model trained in
    bf16 samples about 1.6 times as fast under it on a CPU with AMX (:mod:`dgm.nn.unet`)."""
    if precision not in AUTOCAST_TYPES:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST_TYPES)}, got {precision!r}")
    dtype = AUTOCAST_TYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def sample_in_precision(model, n: int, precision: str = "32-true", **options) -> Tensor:
    """``model.sample(n, **options)`` under the arithmetic of ``precision`` (:func:`autocast`), returned in float32
    where it is floating point (bfloat16 under autocast). In ``"32-true"`` it is the plain call, so that any object
    with ``sample(n)`` serves (benchmarks' wrappers of other libraries)."""
    if precision == "32-true":
        return model.sample(n, **options)
    with autocast(precision, model.device):
        samples = model.sample(n, **options)
    return samples.float() if samples.is_floating_point() else samples


def check_labels(labels, n: int, n_classes: int) -> Tensor:
    """Return ``labels`` as a long tensor if it holds ``n`` class indices ``0..n_classes-1``, else raise
    ``ValueError``."""
    if not isinstance(labels, Tensor) or labels.shape != (n,):
        raise ValueError(f"labels must be a tensor of {n} class indices (shape ({n},)), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("labels must hold integer class indices, got fractions")
    if labels.numel() and (labels.min() < 0 or labels.max() > n_classes - 1):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values in "
                         f"[{labels.min().item():g}, {labels.max().item():g}]")
    return labels.long()


def sample_labels(model: "GenerativeModel", n: int) -> dict:
    """``{"labels": 0, 1, …, n_classes − 1, 0, 1, …}`` (``n`` of them) for a class-conditional model, else ``{}``:
    the keyword arguments of ``model.sample(n, ...)`` that draw every class in turn (pictures, sample quality)."""
    n_classes = getattr(model, "n_classes", None)  # any object with sample(n) serves, a GenerativeModel or not
    if n_classes is None:
        return {}
    return {"labels": torch.arange(n, device=model.device) % n_classes}


def _jsonable(value, where: str):
    """Tuples become lists; anything JSON cannot hold is refused with the argument's name."""
    if isinstance(value, tuple | list):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"model argument {where}={value!r} cannot be saved in config.json; "
                    "use numbers, strings, lists or dicts")


def _config(cls: type, arguments: dict) -> dict:
    """The constructor arguments a registered model saves in ``config.json`` (all of them, JSON-able or refused).
    A class built directly from parts, unregistered (a flow of given bijections serving as a VAE prior), keeps the
    JSON-able ones only: it is saved as part of the registered model that holds it."""
    if cls.model_name:
        return {key: _jsonable(value, key) for key, value in arguments.items()}
    config = {}
    for key, value in arguments.items():
        try:
            config[key] = _jsonable(value, key)
        except TypeError:
            continue
    return config


@dataclass(frozen=True)
class OptimizerGroup:
    """One optimizer of a model's training: the parameters it updates and its Adam settings.

    ``lr`` and ``schedule`` (``"constant"`` or ``"cosine"``) left at ``None`` take the run's ``lr`` and
    ``lr_schedule``; a group that sets them keeps its own, so that, e.g., a GAN's critic can learn four times faster
    than its generator (the two time-scale update rule of Heusel et al., 2017).
    """

    name: str
    parameters: Sequence[nn.Parameter]
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str | None = None

    def __post_init__(self):
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"the learning rate of optimizer group {self.name!r} must be positive, got {self.lr}")
        if self.schedule is not None and self.schedule not in LR_SCHEDULES:
            raise ValueError(f"the schedule of optimizer group {self.name!r} must be one of {LR_SCHEDULES}, "
                             f"got {self.schedule!r}")


class PlacedModule(nn.Module):
    """A module that tells where its tensors live, so that what it draws is drawn there: the ``device`` and
    ``dtype`` of its first parameter (or buffer, for a module without parameters)."""

    def _first_tensor(self) -> Tensor:
        parameter = next(iter(self.parameters()), None)
        return parameter if parameter is not None else next(iter(self.buffers()), torch.empty(0))

    @property
    def device(self) -> torch.device:
        return self._first_tensor().device

    @property
    def dtype(self) -> torch.dtype:
        return self._first_tensor().dtype


def _recording_init(original_init):
    """``original_init`` that, called outermost, first records its arguments in ``self.config``."""
    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def recording_init(self, *args, **kw):
        if "config" not in self.__dict__:
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            object.__setattr__(self, "config", _config(type(self), arguments))
        original_init(self, *args, **kw)

    return recording_init


def _checks_data(method):
    """``method(self, x, ...)`` that first checks ``x`` with ``self.check``: where data enters a model. A call from
    inside another such method of the same model (``loss`` calling ``log_prob``) passes on what the outer call
    checked, so each batch is checked once."""
    @functools.wraps(method)
    def checked(self, x, *args, **kwargs):
        if self._inside_checked_call:
            return method(self, x, *args, **kwargs)
        x = self.check(x)
        self._inside_checked_call = True
        try:
            return method(self, x, *args, **kwargs)
        finally:
            self._inside_checked_call = False

    return checked


def _keyword_options(method) -> list[str] | None:
    """The names of the options ``method(self, n, ...)`` takes; ``None`` if it takes any (``**options``)."""
    parameters = inspect.signature(method).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return None
    return [name for name in parameters if name not in ("self", "n")]


def _check_sampling_options(options: dict, accepted: list[str] | None, owner: str) -> dict:
    """``options`` if each is one of the ``accepted`` names (``None``: any), else ``ValueError`` listing them."""
    unknown = [] if accepted is None else [name for name in options if name not in accepted]
    if unknown:
        raise ValueError(f"{owner} has no sampling option(s) {', '.join(unknown)}; its options are: "
                         f"{', '.join(accepted) or 'none'}")
    return options


def _checks_count(method):
    """``method(self, n, **options)`` that first checks the number of samples ``n`` with ``self.check_count`` and
    that it takes each option (a ``ValueError`` listing its options, not Python's ``TypeError``)."""
    accepted = _keyword_options(method)  # once: sample_with_log_prob runs at every step of a reverse-KL fit

    @functools.wraps(method)
    def checked(self, n, *args, **options):
        _check_sampling_options(options, accepted, self.model_name or type(self).__name__)
        return method(self, self.check_count(n), *args, **options)

    return checked


class GenerativeModel(PlacedModule):
    """Base class: ``loss``, ``sample``, ``log_prob`` and ``save``, with the likelihood labelled honestly.

    Subclasses set ``likelihood`` to ``"exact"`` (autoregressive models, flows on continuous data),
    ``"lower_bound"`` (ELBO/IWAE, dequantized flows on discrete data, diffusion VLB) or ``None`` (implicit models).

    A class-conditional model sets ``n_classes`` (an instance attribute); its ``loss``, ``log_prob`` and ``sample``
    then take ``labels=`` (class indices ``(N,)``, checked by :func:`check_labels`), and the trainer passes the data
    set's labels to ``loss``.

    How a model is trained is the model's own business, told to the one trainer through three hooks:
    :meth:`optimizer_groups` (which parameters each optimizer updates, with which Adam settings),
    :meth:`training_step` (the updates of one batch, in order, given the batch's index in the run) and
    :meth:`after_update` (called after each optimizer step). The defaults train every parameter by minimising
    ``loss``. Optional hooks that pictures and evaluation use where a model offers them are listed in
    ``OPTIONAL_HOOKS``; :meth:`offers` tells which a model implements.
    """

    likelihood: ClassVar[Likelihood] = None
    model_name: ClassVar[str] = ""  # set by dgm.registry.register_model
    n_classes: int | None = None  # set by class-conditional models: loss/log_prob/sample then take labels=

    config: dict

    _inside_checked_call: bool = False  # set while a method of DATA_METHODS runs on data it checked

    def __init_subclass__(cls, **kwargs):
        """Wrap each subclass constructor so that the outermost call records its arguments in ``self.config``, and
        each method of ``DATA_METHODS`` and ``SAMPLING_METHODS`` that the subclass defines so that it checks its
        input first."""
        super().__init_subclass__(**kwargs)
        for name in DATA_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _checks_data(cls.__dict__[name]))
        for name in SAMPLING_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _checks_count(cls.__dict__[name]))
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_init(cls.__init__)

    # -- the protocol (the methods of DATA_METHODS and SAMPLING_METHODS check their input, overridden or not) -----
    @_checks_data
    def loss(self, x: Tensor, **condition) -> Losses:
        """Scalars to log; the key ``"loss"`` is minimised. ``condition`` holds ``labels=`` for class-conditional
        models (see ``n_classes``).

        The default serves every model with an exact likelihood: maximum likelihood (forward KL), the mean negative
        log-likelihood in nats per example, also logged in bits per dimension.
        """
        if self.likelihood != "exact":
            raise NotImplementedError(f"{type(self).__name__} must define its loss")
        nll = -self.log_prob(x, **condition).mean()
        return {"loss": nll, "bpd": nll / (x[0].numel() * math.log(2))}

    @_checks_count
    def sample(self, n: int, **options) -> Tensor:
        """``n`` samples in data space, following the data convention."""
        raise NotImplementedError

    @_checks_data
    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probability (or its lower bound, see ``likelihood``) of each example, shape ``(N,)``, in nats."""
        raise NotImplementedError(f"{type(self).__name__} has no likelihood (likelihood = None)")

    # -- training hooks -----------------------------------------------------------------------------------------
    def optimizer_groups(self) -> list[OptimizerGroup]:
        """The optimizers of training, each named; by default one Adam over every parameter."""
        return [OptimizerGroup("model", list(self.parameters()))]

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """The updates of one training batch, in order: pairs ``(optimizer group name, losses)``.

        ``step`` counts the batches trained before this one, over the whole run (resumes included), so schedules
        of the objective (KL warm-up, annealing, a critic's rhythm) follow it. The trainer minimises each
        ``losses["loss"]`` with its group's optimizer before it asks for the next pair, so a later loss sees the
        parameters the earlier update changed (a generator step after a critic step). The default is one update of
        the single group with :meth:`loss`.
        """
        yield "model", self.loss(x, **condition)

    def after_update(self, group: str) -> None:
        """Called after each optimizer step of ``group`` (e.g. to clip a WGAN critic's weights); nothing by default."""

    # -- optional hooks (see OPTIONAL_HOOKS) ---------------------------------------------------------------------
    @_checks_count
    def sample_with_log_prob(self, n: int, **options) -> tuple[Tensor, Tensor]:
        """``n`` samples and their log-density under the model, with gradients (reverse-KL fits)."""
        raise NotImplementedError(f"{type(self).__name__} does not give the density of its own samples")

    @_checks_data
    def latent_codes(self, x: Tensor) -> Tensor:
        """A latent representation of each example, shape ``(N, *latent_shape)`` (latent-space pictures)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space")

    def decode(self, codes: Tensor, decoder_noise: bool = True) -> Tensor:
        """Data from latent codes shaped as :meth:`latent_codes` gives them (reconstructions, interpolations):
        a draw of ``p(x | z)``, or its mean where ``decoder_noise`` is false."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder")

    @torch.no_grad()
    def latent_diagnostics(self, x: Tensor) -> dict:
        """Numbers that describe how the model uses its latent space on data ``x`` (``dgm evaluate`` prints them):
        e.g. active units and the KL per dimension of a VAE, the code usage of a VQ-VAE."""
        raise NotImplementedError(f"{type(self).__name__} has no latent diagnostics")

    def layer_trajectory(self, points: Tensor, direction: str = "normalizing") -> list[Tensor]:
        """The points after each layer of a layered map between data and latent space (trajectory pictures)."""
        raise NotImplementedError(f"{type(self).__name__} has no layered map to trace")

    @_checks_data
    def critic_output(self, x: Tensor, **condition) -> Tensor:
        """The raw output ``(N,)`` of an adversarial model's critic on data ``x`` (critic maps of 2D GANs)."""
        raise NotImplementedError(f"{type(self).__name__} has no critic")

    def mix_styles(self, z_rows: Tensor, z_columns: Tensor, crossover: int, **options) -> Tensor:
        """Images ``(rows, columns, *shape)`` that take their first ``crossover`` styles from ``z_rows`` and the rest
        from ``z_columns`` (the style-mixing grid of a style-based generator). A model that offers it draws its
        latents with ``draw_latents(n)`` and has ``n_styles`` styles (``crossover`` lies in ``0..n_styles``)."""
        raise NotImplementedError(f"{type(self).__name__} has no styles to mix")

    @_checks_data
    def noised(self, x: Tensor, t: float) -> Tensor:
        """Data ``x`` diffused to time ``t`` by a diffusion model's forward process, ``x_t = α(t) x_0 + σ(t) ε``, on
        the network's scale (forward-noising pictures)."""
        raise NotImplementedError(f"{type(self).__name__} has no forward noising process")

    def reverse_path(self, n: int, **options) -> list[tuple[float, Tensor]]:
        """The states ``(t, x_t)`` of a diffusion model's sampler from noise at ``t = 1`` to data at ``t = 0``, on the
        network's scale (reverse-trajectory pictures)."""
        raise NotImplementedError(f"{type(self).__name__} has no reverse process")

    def score(self, x: Tensor, t: float, **condition) -> Tensor:
        """The model's estimate of ``∇ log p_t(x)`` at points ``x`` (on the network's scale) at noise time ``t``
        (score-field pictures)."""
        raise NotImplementedError(f"{type(self).__name__} has no score")

    def after_training(self, train: Tensor) -> dict | None:
        """Called by ``fit`` once training ends, in evaluation mode with the final (EMA) weights, on up to 10 000
        training examples drawn at random, before the model is saved: what a model fits from data after its
        networks (a GAN's calibration of rejection sampling). The figures it returns, if any, are kept in the run's
        ``run.json`` under ``"after_training"``."""
        raise NotImplementedError(f"{type(self).__name__} fits nothing after training")

    def offers(self, hook: str) -> bool:
        """Whether this model implements the optional hook ``hook`` (one of ``OPTIONAL_HOOKS``)."""
        if hook not in OPTIONAL_HOOKS:
            raise ValueError(f"unknown optional hook {hook!r}; the optional hooks are {', '.join(OPTIONAL_HOOKS)}")
        return getattr(type(self), hook) is not getattr(GenerativeModel, hook)

    # -- conveniences shared by every model ----------------------------------------------------------------------
    def labels_of(self, labels: Tensor | None, n: int) -> Tensor | None:
        """``labels`` of ``n`` examples checked (:func:`check_labels`) and placed on the model's device for a
        class-conditional model, which needs them; ``None`` for a model without classes, which refuses them."""
        name = self.model_name or type(self).__name__
        if self.n_classes is None:
            if labels is not None:
                raise ValueError(f"labels were given, but this {name} is not class-conditional (n_classes=None)")
            return None
        if labels is None:
            raise ValueError(f"this {name} is class-conditional: give labels= (class indices "
                             f"0..{self.n_classes - 1})")
        return check_labels(labels.to(self.device), n, self.n_classes)

    def check(self, x: Tensor) -> Tensor:
        """``x`` in this model's dtype and on its device (``x`` itself where they agree) if it is a batch of at least
        one example that follows the data convention for the model's ``shape`` and ``levels`` (see
        :func:`check_data`), else ``ValueError``."""
        x = check_data(x, tuple(self.config["shape"]), self.config.get("levels"))
        if len(x) == 0:
            raise ValueError(f"x must hold at least one example, got an empty batch of shape {tuple(x.shape)}")
        model = self._first_tensor()  # where the model's tensors are, in its dtype
        placed = x.to(model.device, model.dtype)
        if placed.dtype != x.dtype and not torch.isfinite(placed).all():
            raise ValueError(f"x must hold values that {model.dtype} can represent (of size at most "
                             f"{torch.finfo(model.dtype).max:.3g}), got values up to {x.abs().max().item():.3g}")
        return placed

    def check_count(self, n) -> int:
        """``n`` if it is a number of samples that one call can draw (see :func:`check_sample_memory`), else
        ``ValueError``."""
        return check_sample_memory(check_sample_count(n), self.config["shape"], self.dtype, self.device)

    def accepts_sample_option(self, name: str) -> bool:
        """Whether ``sample`` names the option ``name`` (a ``sample(n, **options)`` names none)."""
        accepted = _keyword_options(self.sample)
        return accepted is not None and name in accepted

    def check_sample_options(self, options: dict) -> dict:
        """``options`` if ``sample`` accepts each of them, else ``ValueError`` listing the ones it accepts."""
        return _check_sampling_options(options, _keyword_options(self.sample), self.model_name or type(self).__name__)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from dgm.checkpoint import save_model
        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> "GenerativeModel":
        """Rebuild a saved model; the saved class must be ``cls`` or a registered subclass of it that is imported
        (``dgm.load(directory)`` finds any model)."""
        from dgm.checkpoint import load_model
        from dgm.registry import MODELS

        def saved_class(name: str) -> type:
            if name not in MODELS or not issubclass(MODELS[name], cls):
                raise ValueError(f"{directory} holds the model {name!r}, not a {cls.__name__}; "
                                 f"dgm.load({str(directory)!r}) loads any model")
            return MODELS[name]
        return load_model(directory, saved_class)

    def extra_repr(self) -> str:
        return json.dumps(self.config) if not list(self.children()) else ""


class AdversarialModel(GenerativeModel):
    """An implicit model trained by alternating critic and generator updates (Goodfellow et al., 2014, Alg. 1).

    Each batch updates the critic once; every ``critic_steps``-th batch then also updates the generator, each with
    its own Adam (``critic_parameters()`` / ``generator_parameters()``, betas ``adam_betas``, learning rates
    ``generator_lr`` / ``critic_lr`` where a model sets them, the run's otherwise). ``condition`` (``labels=``)
    reaches both losses, so class-conditional GANs train like any other conditional model.
    """

    critic_steps: int = 1
    adam_betas: ClassVar[tuple[float, float]] = (0.5, 0.999)
    generator_lr: float | None = None
    critic_lr: float | None = None

    def generator_loss(self, x: Tensor, **condition) -> Losses:
        raise NotImplementedError

    def critic_loss(self, x: Tensor, **condition) -> Losses:
        raise NotImplementedError

    def generator_parameters(self):
        raise NotImplementedError

    def critic_parameters(self):
        raise NotImplementedError

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("generator", list(self.generator_parameters()), self.generator_lr, self.adam_betas),
                OptimizerGroup("critic", list(self.critic_parameters()), self.critic_lr, self.adam_betas)]

    def training_step(self, x: Tensor, step: int, **condition) -> Iterator[Update]:
        """A critic update, then a generator update on every ``critic_steps``-th batch of the run."""
        yield "critic", self.critic_loss(x, **condition)
        if (step + 1) % self.critic_steps == 0:
            yield "generator", self.generator_loss(x, **condition)

    def loss(self, x: Tensor, **condition) -> Losses:
        """Both objectives on a batch, for evaluation: ``loss`` is the generator's."""
        generator = self.generator_loss(x, **condition)
        critic = self.critic_loss(x, **condition)
        return {"loss": generator["loss"], "critic_loss": critic["loss"]}
