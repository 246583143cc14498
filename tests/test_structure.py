"""The package's shape (docs/architecture.md): small modules and functions, no import cycle
among stereoconv's modules, imports that point down the layers only, no private name used
outside its module, and a command line that answers --help without loading torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT

PACKAGE = ROOT / "stereoconv"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def test_no_module_is_over_the_limit():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_the_limit():
    long = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.lineno  # the def line: click decorators are not its body
                if node.end_lineno - first + 1 > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = node.end_lineno - first + 1
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The stereoconv modules a module imports, at any depth of its code (imports inside
    functions count: they are cycles too, only deferred)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    known = modules()
    # a package's __init__ runs before its modules: importing a module imports its parents
    graph = {name: imports(name, path, known) for name, path in known.items()}
    for name in known:
        graph[name] -= {p for p in graph[name] if name.startswith(p + ".")}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# the layers, bottom first: a module imports its own package, or a package of a lower layer
# (the leaves of layer 0 import one another; the cycle test keeps them in order)
LAYERS = [
    {"stereoconv", "errors", "fields", "config", "fileio", "tensors", "progress", "lock", "models",
     "overlap", "geometry", "layout", "layouts", "motion", "testing"},
    {"media", "diffusion"},
    {"disparity", "backends"},
    {"converter", "report"},
    {"jobs"},
    {"runner", "evaluation"},
    {"cli"},
    {"__main__"},
]  # fmt: skip


def layer_of(module: str) -> tuple[int, str]:
    """(layer, top-level part) of a dotted module name of the package."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "stereoconv"
    return next(i for i, names in enumerate(LAYERS) if top in names), top


def test_every_package_has_a_layer():
    tops = {layer_of(name)[1] for name in modules()}
    assert tops <= set().union(*LAYERS)


def test_imports_point_down_the_layers():
    """media and disparity know nothing of jobs, runners or the command line; jobs know no
    runner; nothing imports the command line."""
    known = modules()
    upward = []
    for name, path in known.items():
        layer, top = layer_of(name)
        for target in imports(name, path, known):
            target_layer, target_top = layer_of(target)
            if target_top != top and (target_layer > layer or (target_layer == layer > 0)):
                upward.append(f"{name} -> {target}")
    assert not upward, upward


def private_uses(name: str, path: Path, known: dict[str, Path]) -> list[str]:
    """Names with a leading underscore that `name` takes from another module of the package:
    imported by name, or read as an attribute of a module it imported."""
    found, aliases = [], set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stereoconv"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    aliases.add(alias.asname or alias.name)  # a module
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{name}: {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            aliases |= {
                a.asname for a in node.names if a.name.startswith("stereoconv") and a.asname
            }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
        ):
            found.append(f"{name}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module():
    known = modules()
    crossing = [use for name, path in known.items() for use in private_uses(name, path, known)]
    assert not crossing, crossing


def test_the_checks_find_what_they_look_for(tmp_path):
    """The layer and private-name checks on a made-up module."""
    assert layer_of("stereoconv.media.video") == (1, "media")
    fake = tmp_path / "m.py"
    fake.write_text("from stereoconv.geometry import _hidden\nfrom stereoconv import geometry\n"
                    "geometry._other()\n")  # fmt: skip
    known = {"stereoconv.geometry": fake, "stereoconv.media.m": fake}
    uses = private_uses("stereoconv.media.m", fake, known)
    assert uses == [
        "stereoconv.media.m: stereoconv.geometry._hidden",
        "stereoconv.media.m: geometry._other",
    ]


def imports_under_tests(source: str) -> set[str]:
    """The modules under tests. that a test file's source imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "tests" or name.startswith("tests.")}


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers/; a test module (or conftest) imports no other
    test module, and the helpers import none."""
    tests = ROOT / "tests"
    wrong = []
    for path in sorted(tests.rglob("*.py")):
        for module in imports_under_tests(path.read_text()):
            if not module.startswith("tests.helpers.") and module != "tests.helpers":
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, wrong
    source = "from tests.test_video import run\nimport tests.helpers.clips\n"
    assert imports_under_tests(source) == {"tests.test_video", "tests.helpers.clips"}


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_does_not_import_torch():
    heavy = "('torch', 'diffusers', 'transformers', 'ray', 'av', 'cv2')"
    out = run_python(
        "import sys, contextlib, io\n"
        "from stereoconv.cli.main import main\n"
        f"before = [m for m in {heavy} if m in sys.modules]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['video', '--help'], ['images', '--help'],"
        " ['eval', '--help'], ['depth', '--help']):\n"
        "        assert main(argv) == 0\n"
        f"print(before, [m for m in {heavy} if m in sys.modules])\n"
    )
    assert out.strip() == "[] []", out
