"""Every recipe is well formed: its YAML loads, its model exists and takes its model options (names and kinds of
value), and its training options are options of the trainer, so a misspelt option fails here, not when it is run."""
import pytest

from dgm.api import model_class
from dgm.recipes import _names, load_recipe
from dgm.registry import check_options, options_of
from dgm.training import fit

TRAINER_OPTIONS = options_of(fit, skip=("model", "data", "out", "resume", "progress", "callbacks"))


@pytest.mark.parametrize("name", sorted(_names()))
def test_recipe_names_a_model_with_its_options_and_trainer_options(name):
    recipe = load_recipe(name)
    cls = model_class(recipe["model"])
    check_options(f"model {recipe['model']!r}", options_of(cls.__init__, skip=("shape", "levels")),
                  recipe["model_options"])
    check_options("the trainer", TRAINER_OPTIONS, recipe["train"])
