"""The module table of docs/ARCHITECTURE.md against the real import graph, and the layering rules.

The graph is derived from the sources with ``ast`` (module-level imports and imports inside functions:
``from .x import y``, ``from . import x``, ``import scalesearch.x``, ...). Fast, starts no Ray.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG_DIR = ROOT / "scalesearch"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PKG = "scalesearch"

# every third-party package the code may import; the table's cell after ";" lists them per module
THIRD_PARTY = {"ray", "hydra", "omegaconf", "optuna", "sqlalchemy", "torch", "torchvision", "matplotlib", "yaml", "numpy", "PIL",
               "scipy", "pyarrow"}
RUNNER = "run.runner"
# (c) hydra only in cli and compose; omegaconf at module level there, inside functions in help and validate
HYDRA_OK = {"apps.cli", "apps.compose"}
OMEGACONF_OK = {"apps.cli", "apps.compose", "apps.help", "apps.validate"}
OMEGACONF_TOP_OK = {"apps.cli", "apps.compose"}
# (d) plain Python + torch/numpy/scipy, usable from a notebook without Ray or Hydra
CORE = ("scaling.spec", "scaling.cost", "scaling.model", "scaling.coefficients", "scaling.scaler", "decide.stats",
        "decide.ranks", "decide.curves", "decide.optimum", "decide.shares", "decide.results", "decide.verdict")
CORE_THIRD_PARTY = {"torch", "torchvision", "numpy", "scipy"}
# the folders, in the pipeline's order (docs/ARCHITECTURE.md, "Layout")
FOLDERS = ("scaling", "plan", "train", "run", "decide", "report", "apps")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module ("run.runner": scalesearch/run/runner.py)
    target: str  # a package module (same form) or a third-party top-level package
    internal: bool
    line: int
    top: bool  # executed at import time (not inside a function)

    def where(self) -> str:
        return f"{path_of(self.module).relative_to(ROOT)}:{self.line}"


def path_of(module: str) -> Path:
    return PKG_DIR.joinpath(*module.split(".")).with_suffix(".py")


def module_names() -> list[str]:
    """Every module of the package as a dotted name below ``scalesearch`` (a folder's ``__init__.py`` is the folder's
    docstring only, not a module of the table; the package's own ``__init__.py`` is ``__init__``)."""
    names = []
    for p in PKG_DIR.rglob("*.py"):
        parts = p.relative_to(PKG_DIR).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            continue
        names.append(".".join(parts))
    return sorted(names)


def _imports_of(module: str, names: set[str]) -> list[Import]:
    tree = ast.parse(path_of(module).read_text(), filename=str(path_of(module)))
    here = module.split(".")[:-1]  # the module's package, below scalesearch
    found: list[Import] = []

    def internal(parts: list[str], node: ast.AST, top: bool) -> None:
        target = ".".join(parts) if parts else "__init__"
        assert target in names, f"{path_of(module)}:{node.lineno}: imports {target}, which is no module"
        if target != module:
            found.append(Import(module, target, True, node.lineno, top))

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == PKG or a.name.startswith(PKG + "."):
                    internal(a.name.split(".")[1:], node, top)
                else:
                    found.append(Import(module, a.name.split(".")[0], False, node.lineno, top))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 0 and not (mod == PKG or mod.startswith(PKG + ".")):
                found.append(Import(module, mod.split(".")[0], False, node.lineno, top))
                return
            if node.level == 0:
                base = mod.split(".")[1:]
            else:
                if node.level - 1 > len(here):
                    raise AssertionError(f"{path_of(module)}:{node.lineno}: relative import beyond the package")
                base = here[:len(here) - (node.level - 1)] + ([p for p in mod.split(".")] if mod else [])
            if ".".join(base) in names:  # from .x import y
                internal(base, node, top)
            else:  # from . import x (a module) or from . import name (defined in the package's __init__)
                for a in node.names:
                    sub = ".".join(base + [a.name])
                    internal(sub.split(".") if sub in names else base, node, top)
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, True)
    return found


def _app_jobs() -> list[Import]:
    """cli's table of apps names each app's job module, which its ``_job`` imports by name when the app runs:
    imports of cli, inside a function (read from the table's source, so the graph stays derived from the code)."""
    tree = ast.parse(path_of("apps.cli").read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "APPS")
    jobs = [v.elts[2].elts[0] for v in table.values]
    assert jobs and all(isinstance(j, ast.Constant) for j in jobs), "cli.APPS: every job module is a string"
    return [Import("apps.cli", j.value, True, j.lineno, False) for j in jobs]


IMPORTS: dict[str, list[Import]] = {m: _imports_of(m, set(module_names())) for m in module_names()}
IMPORTS["apps.cli"] += _app_jobs()
GRAPH: dict[str, set[str]] = {m: {i.target for i in imps if i.internal} for m, imps in IMPORTS.items()}
EXTERNAL: dict[str, set[str]] = {m: {i.target for i in imps if not i.internal} for m, imps in IMPORTS.items()}


def third_party(module: str) -> set[str]:
    return {t for t in EXTERNAL[module] if t not in sys.stdlib_module_names}


def reachable(module: str) -> set[str]:
    """Every package module ``module`` imports, directly or through others (not itself unless in a cycle)."""
    seen: set[str] = set()
    todo = list(GRAPH[module])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(GRAPH.get(m, ()))
    return seen


def uses(package: str, top_only: bool = False) -> dict[str, list[Import]]:
    out: dict[str, list[Import]] = {}
    for m, imps in IMPORTS.items():
        hits = [i for i in imps if not i.internal and i.target == package and (i.top or not top_only)]
        if hits:
            out[m] = hits
    return out


def _lines(imps: list[Import]) -> str:
    return ", ".join(i.where() for i in imps)


# ---------------------------------------------------------------- the table
def _cell_names(text: str) -> list[str]:
    text = text.strip()
    if text in ("", "–", "-", "—"):
        return []
    return [n.strip().strip("`").strip() for n in text.split(",") if n.strip()]


def documented() -> list[tuple[str, set[str], set[str]]]:
    """(module, package imports, third-party imports) per row of the "## Modules" table, in order."""
    text = DOC.read_text()
    assert "\n## Modules\n" in text, f"{DOC} has no '## Modules' section"
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "module" or set(cells[0]) <= set("-: "):
            continue  # header, separator
        assert len(cells) == 3, f"{DOC}: a row of the module table needs 3 cells (module | role | imports): {line}"
        name = cells[0].strip("`").strip()
        assert name.endswith(".py"), f"{DOC}: the module cell names a file (`run/runner.py`): {line}"
        pkg, _, ext = cells[2].partition(";")
        rows.append((name[:-3].replace("/", "."), {n.removesuffix(".py").replace("/", ".") for n in _cell_names(pkg)},
                     set(_cell_names(ext))))
    assert rows, f"{DOC}: the '## Modules' section holds no table rows"
    return rows


def test_every_module_file_has_one_row_and_every_row_a_file():
    names = [r[0] for r in documented()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"{DOC}: modules with more than one row: {dupes}"
    files = set(module_names())
    assert not files - set(names), f"{DOC}: module files without a row in '## Modules': {sorted(files - set(names))}"
    assert not set(names) - files, f"{DOC}: rows without a file in scalesearch/: {sorted(set(names) - files)}"


def test_documented_imports_equal_the_real_ones():
    problems = []
    for module, pkg, ext in documented():
        if module not in GRAPH:
            continue  # reported by the test above
        real, real_ext = GRAPH[module], third_party(module) & THIRD_PARTY
        if pkg != real:
            problems.append(f"{module}.py: table says [{', '.join(sorted(pkg))}], code imports "
                            f"[{', '.join(sorted(real))}] (missing in table: {sorted(real - pkg)}, "
                            f"not imported: {sorted(pkg - real)})")
        if ext != real_ext:
            problems.append(f"{module}.py: table's third-party [{', '.join(sorted(ext))}], code imports "
                            f"[{', '.join(sorted(real_ext))}]")
    assert not problems, f"{DOC} '## Modules' is out of date:\n" + "\n".join(problems)


def test_table_rows_are_ordered_by_layer():
    """Inside a folder's table, a module comes after the modules of its folder that it imports."""
    seen: set[str] = set()
    late = []
    for module, _, _ in documented():
        below = {d for d in GRAPH.get(module, set()) if folder(d) == folder(module)} - seen
        if below:
            late.append(f"{module}.py imports {sorted(below)}, listed below it")
        seen.add(module)
    assert not late, f"{DOC}: a folder's table must list a module after the modules of its folder it imports:\n" + "\n".join(late)


def test_third_party_imports_are_the_known_ones():
    """A new dependency belongs in THIRD_PARTY and in the table's imports cells."""
    unknown = {m: sorted(third_party(m) - THIRD_PARTY) for m in GRAPH if third_party(m) - THIRD_PARTY}
    assert not unknown, f"third-party imports not covered by the architecture table: {unknown}"


# ---------------------------------------------------------------- the rules
def find_cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = dfs(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state:
            c = dfs(m)
            if c:
                return c
    return None


def test_no_import_cycle():
    cycle = find_cycle()
    if cycle:
        edges = []
        for a, b in itertools.pairwise(cycle):
            edges.append(f"{a} -> {b} ({_lines([i for i in IMPORTS[a] if i.internal and i.target == b])})")
        pytest.fail("import cycle (lazy imports count): " + " -> ".join(cycle) + "\n" + "\n".join(edges))


def test_only_the_runner_and_modules_above_it_import_ray():
    """Ray lives in run/ (the runner and the modules it runs trials with) and in the modules above the runner: a module
    outside run/ that imports Ray reaches scalesearch.run.runner, and none of the runner's imports outside run/ does."""
    ray = uses("ray")
    assert any(folder(m) == "run" for m in ray), "no module of run/ imports ray: the parser or the layering changed"
    below = {m: imps for m, imps in ray.items() if folder(m) != "run" and RUNNER not in reachable(m)}
    assert not below, "nothing below the runner imports Ray; these modules do not import scalesearch.run.runner:\n" + \
        "\n".join(f"{m}.py: `import ray` at {_lines(imps)}" for m, imps in sorted(below.items()))
    depended_on = {m: uses_ for m, uses_ in ray.items() if m in reachable(RUNNER) and folder(m) != "run"}
    assert not depended_on, f"modules outside run/ that the runner imports must not import Ray: {sorted(depended_on)}"


def test_only_the_runner_imports_ray_at_module_level():
    top = {m: imps for m, imps in uses("ray", top_only=True).items() if folder(m) != "run"}
    assert not top, "only modules of run/ import Ray at module level; import it inside the function that needs it:\n" + \
        "\n".join(f"{m}.py: {_lines(imps)}" for m, imps in sorted(top.items()))


def test_only_cli_imports_hydra():
    bad = {m: imps for m, imps in uses("hydra").items() if m not in HYDRA_OK}
    assert not bad, f"only {sorted(HYDRA_OK)} may import hydra (library code takes the config dataclasses):\n" + \
        "\n".join(f"{m}.py: {_lines(imps)}" for m, imps in sorted(bad.items()))


def test_omegaconf_only_in_cli_and_validate():
    bad = {m: imps for m, imps in uses("omegaconf").items() if m not in OMEGACONF_OK}
    assert not bad, f"only {sorted(OMEGACONF_OK)} may import omegaconf:\n" + \
        "\n".join(f"{m}.py: {_lines(imps)}" for m, imps in sorted(bad.items()))
    top = {m: imps for m, imps in uses("omegaconf", top_only=True).items() if m not in OMEGACONF_TOP_OK}
    assert not top, f"only {sorted(OMEGACONF_TOP_OK)} may import omegaconf at module level:\n" + \
        "\n".join(f"{m}.py: {_lines(imps)}" for m, imps in sorted(top.items()))


@pytest.mark.parametrize("module", CORE)
def test_core_modules_are_plain_python_and_torch(module):
    outside = reachable(module) - set(CORE)
    assert not outside, f"{module}.py reaches {sorted(outside)}: the core ({', '.join(CORE)}) imports only itself"
    extra = third_party(module) - CORE_THIRD_PARTY
    where = _lines([i for i in IMPORTS[module] if not i.internal and i.target in extra])
    assert not extra, f"{module}.py imports {sorted(extra)} ({where}); the core may use only " \
        f"{sorted(CORE_THIRD_PARTY)} besides the standard library"


def test_core_import_loads_no_ray_or_hydra():
    code = ("import sys\n"
            + "".join(f"import scalesearch.{m}\n" for m in CORE)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'hydra', 'omegaconf')))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stderr
    loaded = ast.literal_eval(p.stdout.strip().splitlines()[-1])
    assert loaded == [], (f"importing {', '.join(CORE)} in a fresh interpreter loaded "
                          f"{sorted({m.split('.')[0] for m in loaded})} ({len(loaded)} modules, e.g. {loaded[:5]})")


def test_a_trial_process_loads_no_scipy_matplotlib_or_torchvision():
    """Every Tune trial starts a process that imports what ``trial.run_trial`` needs (trial, proxy, data, model):
    the statistics (scipy, ~0.7 s per process), the plots and torchvision (~2.2 s: its ops load torch._dynamo)
    belong to the driver."""
    code = ("import sys\nimport scalesearch.run.trial\nimport scalesearch.train.proxy\nimport scalesearch.train.data\n"
            "import scalesearch.scaling.model\nfrom scalesearch.train.data import ProxyData\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'matplotlib', 'torchvision')))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stderr
    loaded = ast.literal_eval(p.stdout.strip().splitlines()[-1])
    assert loaded == [], f"a trial's imports loaded {sorted({m.split('.')[0] for m in loaded})}: {loaded[:5]}"


MAX_LINE, MAX_FUNCTION = 120, 60


def test_lines_and_functions_fit_on_a_screen():
    """Issue 20: every line of the package ≤ 120 characters, every function (``def`` to its last line) ≤ 60 lines."""
    long_lines, long_functions = [], []
    for path in sorted(PKG_DIR.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PKG_DIR).as_posix()
        long_lines += [f"{name}:{i} ({len(line)})" for i, line in enumerate(text.splitlines(), 1)
                       if len(line) > MAX_LINE]
        long_functions += [f"{name}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
                           for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and n.end_lineno - n.lineno + 1 > MAX_FUNCTION]
    assert not long_lines, f"lines over {MAX_LINE} characters: {', '.join(long_lines)}"
    assert not long_functions, f"functions over {MAX_FUNCTION} lines: {', '.join(long_functions)}"


def test_no_private_name_crosses_a_module():
    """Issue 20: no module imports another module's private name (``from .x import _y``) or reaches into one
    (``x._y`` on a package module)."""
    found = []
    for m in module_names():
        tree = ast.parse(path_of(m).read_text())
        modules = {a.asname or a.name.split(".")[-1] for node in ast.walk(tree) for a in getattr(node, "names", ())
                   if isinstance(node, (ast.Import, ast.ImportFrom)) and any(i.target.endswith(a.name.split(".")[-1])
                                                                             for i in IMPORTS[m] if i.internal)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level >= 1 or (node.module or "").startswith(PKG)):
                found += [f"{path_of(m).name}:{node.lineno} imports {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                  and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{m}.py:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "; ".join(found)


# ---------------------------------------------------------------- the folders (issue 34)
def folder(module: str) -> str:
    return module.split(".")[0] if "." in module else ""


def test_the_folders_are_the_pipeline_and_each_says_what_it_holds():
    """``ls scalesearch/`` shows the pipeline: the folders in FOLDERS and nothing else, each with a docstring in its
    ``__init__.py``; at the top only the package's door, its settings, its file writing and the pipeline."""
    found = sorted(d.name for d in PKG_DIR.iterdir() if d.is_dir() and (d / "__init__.py").exists())
    assert found == sorted(FOLDERS), f"scalesearch/'s folders {found}, documented {sorted(FOLDERS)}"
    for name in FOLDERS:
        doc = ast.get_docstring(ast.parse((PKG_DIR / name / "__init__.py").read_text()))
        assert doc, f"scalesearch/{name}/__init__.py says nothing about what the folder holds"
    top = sorted(m for m in module_names() if "." not in m)
    assert top == ["__init__", "__main__", "config", "io", "paths", "pipeline"], top


@pytest.mark.parametrize("name", ["scaling", "decide"])
def test_the_family_and_the_decision_import_neither_ray_nor_hydra(name):
    """``scaling/`` (the family) and ``decide/`` (the statistics and the decision) work in a notebook without a
    cluster or a config: neither they nor anything they import pulls in Ray, Hydra or OmegaConf."""
    bad = []
    for m in (m for m in GRAPH if folder(m) == name):
        for dep in {m} | reachable(m):
            bad += [f"{m} (through {dep}): {i.target} at {i.where()}" for i in IMPORTS[dep]
                    if not i.internal and i.target in ("ray", "hydra", "omegaconf")]
    assert not bad, "\n".join(bad)


def test_the_report_never_imports_the_runs_machinery():
    """``report/`` renders facts (tables, best.json) into words and pictures; it never reaches ``run/`` (Ray, the
    run directory's ownership, interrupts)."""
    bad = {m: sorted(d for d in reachable(m) if folder(d) == "run") for m in GRAPH if folder(m) == "report"}
    bad = {m: d for m, d in bad.items() if d}
    assert not bad, f"report/ reaches run/: {bad}"


MAX_MODULE = 400


def test_every_module_fits_the_mark():
    """Issue 34: no module over 400 lines (a newcomer reads one in a sitting)."""
    over = {m: n for m in module_names() if (n := len(path_of(m).read_text().splitlines())) > MAX_MODULE}
    assert not over, f"modules over {MAX_MODULE} lines: {over}"
