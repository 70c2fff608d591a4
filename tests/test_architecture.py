"""The shape of the code that docs/architecture.md promises: no import cycle among dgm's modules, leaves that import
nothing of dgm, no model module importing a sibling model, and a trainer with no branch for any family."""
import ast
from pathlib import Path

import dgm

SOURCE = Path(dgm.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in SOURCE.rglob("*.py")}


def _resolve(name: str) -> str:
    """The module of ``dgm.a.b.name``: the longest prefix that is a module of dgm."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> set[str]:
    """The dgm modules that ``module`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dgm":
            found |= {_resolve(f"{node.module}.{alias.name}") for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {_resolve(alias.name) for alias in node.names if alias.name.split(".")[0] == "dgm"}
    return found - {module}


def test_no_import_cycle():
    graph = {module: imports_of(module) for module in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            assert state.get(imported) != "open", f"import cycle: {' -> '.join(path + [module, imported])}"
            if imported not in state:
                visit(imported, path + [module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_leaves_import_nothing_of_dgm():
    for leaf in ("dgm.registry", "dgm.checkpoint"):
        assert imports_of(leaf) == set(), leaf


def registers_a_model(module: str) -> bool:
    return "@register_model(" in MODULES[module].read_text()


# whole models of one family that serve as parts of another's: the autoregressive decoder of PixelVAE and the
# autoregressive priors over a VQ-VAE's codes are dgm's (Gated) PixelCNN
COMPOSED_FAMILIES = {("latent", "autoregressive")}


def test_no_model_imports_a_sibling_model():
    """What two models share lives in nn/, distributions/, flows/ or a module of the family that registers no model
    (its base, its parts); a family uses another family's models only where COMPOSED_FAMILIES says so."""
    for module in MODULES:
        if not (module.startswith("dgm.models.") and registers_a_model(module)):
            continue
        family = module.split(".")[2]
        reached = {module}
        frontier = [module]
        while frontier:  # the model modules reached through the parts this module imports
            for name in imports_of(frontier.pop()):
                if name.startswith("dgm.models.") and name not in reached:
                    reached.add(name)
                    if not registers_a_model(name):
                        frontier.append(name)
        models = {name for name in reached - {module} if registers_a_model(name)}
        foreign = {name for name in models if (family, name.split(".")[2]) not in COMPOSED_FAMILIES}
        assert not foreign, f"{module} imports the models {foreign}"


def test_the_trainer_has_no_branch_for_a_family():
    for path in (SOURCE / "training").glob("*.py"):
        assert "adversarial" not in path.read_text().lower(), path
