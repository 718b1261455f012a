"""The layers import downwards only: the runtime (controller/) never imports the simulator
(sim/), the testbed (topo/), the workload tools, the capture queries (capture_query/) or the
command-line composition; its entry point `python -m controller` alone adds `query`."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UPPER_LAYERS = {"sim", "topo", "workload", "p4dispatch", "tests", "ptf_tests", "scripts", "capture_query"}
# `python -m controller query ...` is the form issue 12 fixes: the entry point may register it.
ENTRY_POINT_MAY_IMPORT = {"controller/__main__.py": {"capture_query"}}


def _imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_runtime_imports_no_upper_layer():
    offenders = {}
    for path in (REPO / "controller").rglob("*.py"):
        name = str(path.relative_to(REPO))
        offenders[name] = sorted(_imported_packages(path) & UPPER_LAYERS - ENTRY_POINT_MAY_IMPORT.get(name, set()))
    assert {p: names for p, names in offenders.items() if names} == {}


def test_capture_queries_import_no_testbed_or_cli_composition():
    offenders = {str(p.relative_to(REPO)): sorted(_imported_packages(p) & {"topo", "p4dispatch", "workload"})
                 for p in (REPO / "capture_query").rglob("*.py")}
    assert {p: names for p, names in offenders.items() if names} == {}


def test_simulator_imports_no_testbed():
    offenders = {str(p.relative_to(REPO)): sorted(_imported_packages(p) & {"topo", "p4dispatch"})
                 for p in (REPO / "sim").rglob("*.py")}
    assert {p: names for p, names in offenders.items() if names} == {}
