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


def test_no_model_imports_a_sibling_model():
    """What two models share lives in nn/, distributions/, flows/ or the family's base module."""
    shared = {"base", "tools", "__init__"}
    for module, path in MODULES.items():
        if module.startswith("dgm.models.") and path.stem not in shared:
            siblings = {name for name in imports_of(module)
                        if name.startswith("dgm.models.") and name.rsplit(".", 1)[-1] not in shared}
            assert not siblings, f"{module} imports {siblings}"


def test_the_trainer_has_no_branch_for_a_family():
    for path in (SOURCE / "training").glob("*.py"):
        assert "adversarial" not in path.read_text().lower(), path
