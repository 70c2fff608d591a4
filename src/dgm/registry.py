"""Name → class registries for models and name → factory registries for data sets.

A leaf of the import graph: model and data modules register themselves here, and the modules that look names up
(``dgm.api`` for models, ``dgm.data.base`` for data sets) first import the modules of their package.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import reprlib
from collections.abc import Callable, Iterable

MODELS: dict[str, type] = {}
MODEL_DESCRIPTIONS: dict[str, str] = {}
DATASETS: dict[str, Callable] = {}
DATASET_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str):
    """Class decorator: make a GenerativeModel subclass reachable as ``dgm.create(name, ...)``."""
    def decorate(cls):
        if name in MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        cls.model_name = name
        MODELS[name] = cls
        MODEL_DESCRIPTIONS[name] = description
        return cls
    return decorate


def register_dataset(name: str, description: str):
    """Function decorator: ``factory(**options) -> Data`` becomes ``dgm.data.load(name, **options)``."""
    def decorate(factory):
        if name in DATASETS:
            raise ValueError(f"data set name {name!r} is registered twice")
        DATASETS[name] = factory
        DATASET_DESCRIPTIONS[name] = description
        return factory
    return decorate


def accepts(cls: type, argument: str) -> bool:
    return argument in inspect.signature(cls.__init__).parameters


def unknown_name(kind: str, name, known: Iterable[str]) -> ValueError:
    """The error for ``name``, which is none of the ``known`` names of its ``kind`` (a model, a data set, a recipe):
    it suggests the closest known names, then lists them all."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3)
    guess = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return ValueError(f"unknown {kind} {name!r}{guess}; known {kind}s: {', '.join(known)}")


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_string(value) -> bool:
    return isinstance(value, str)


def _is_list(value) -> bool:
    return isinstance(value, list | tuple)


def _is_integer_list(value) -> bool:
    return _is_list(value) and all(map(_is_integer, value))


# the kinds of value an option may take, told by its default: (is the default of this kind, is a value of this kind,
# what such values are); a default is of the first kind it fits (True is also an integer)
OPTION_KINDS = (
    (_is_bool, _is_bool, "True or False"),
    (_is_integer, _is_integer, "an integer"),
    (lambda default: isinstance(default, float), _is_number, "a number"),
    (_is_string, _is_string, "a string"),
    (_is_integer_list, _is_integer_list, "a list of integers"),
    (_is_list, _is_list, "a list"),
)


def options_of(function: Callable, skip: Iterable[str] = ()) -> dict:
    """The options of ``function``, its named parameters apart from ``self`` and ``skip``, with their defaults
    (``inspect.Parameter.empty`` where there is none)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
            if parameter.kind in named and name not in ("self", *skip)}


def describe_options(options: dict) -> str:
    """``name=default, ...`` (just ``name`` where there is no default), or ``none``."""
    return ", ".join(name if default is inspect.Parameter.empty else f"{name}={default!r}"
                     for name, default in options.items()) or "none"


def check_options(owner: str, accepted: dict, given: dict) -> dict:
    """``given`` if each of its options is one of ``accepted`` (names and defaults, see :func:`options_of`) with a
    value of the kind of its default, else ``ValueError`` in the words of the caller: ``owner`` (``"model 'made'"``)
    and the option names as given."""
    for name, value in given.items():
        if name not in accepted:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unexpected keyword argument {name!r}: {owner} has no argument of that name{guess}; "
                             f"its arguments are: {describe_options(accepted)}")
        kind = _option_kind(accepted[name])
        if kind is not None and not kind[1](value):
            raise ValueError(f"{owner} cannot be built from {name}={reprlib.repr(value)}: {name} must be {kind[2]}, "
                             f"like its default {accepted[name]!r}")
    return given


def _option_kind(default) -> tuple | None:
    """The entry of ``OPTION_KINDS`` for the kind of ``default``; ``None`` (any value) where there is no default or
    it is ``None``."""
    return next((kind for kind in OPTION_KINDS if kind[0](default)), None)


def import_modules(folders: list[str], prefix: str) -> None:
    """Import every module below the package ``folders`` (its ``__path__``) whose dotted names start with ``prefix``:
    their decorators fill the registries, so a new model or data set needs no list to be edited. Each package
    imports its own (``dgm.api`` the models, ``dgm.data.base`` the data sets), so this module imports nothing of
    dgm."""
    for module in pkgutil.walk_packages(folders, prefix=prefix):
        importlib.import_module(module.name)
