"""The layout of DESIGN §2: imports go one way down the floors, and no module imports itself
back through others (no circles)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"codec": "vcodec", "bitstream": "vcodec.bitstream", "cli": "vcodec.cli",
            "models": "vcodec.models"}  # fmt: skip
# floor of a module by its name's prefix (the longest prefix wins); higher may import lower
FLOORS = {
    "vcodec": 0, "vcodec.bitstream": 0,
    "vcodec.models": 1,
    "vcodec.stages": 2,
    "vcodec.pipeline": 3,
    "vcodec.eval": 4, "vcodec.train": 4,
    "vcodec.cli": 5,
}  # fmt: skip


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path) -> set[str]:
    """The vcodec modules a file imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vcodec"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("vcodec")}
    return out


def floor(module: str) -> int:
    prefix = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[prefix]


def test_imports_go_down_the_floors() -> None:
    found = modules()
    wrong = [
        f"{name} imports {target}"
        for name, path in found.items()
        for target in imports(path)
        if target in found and floor(target) > floor(name)
    ]
    assert not wrong


def test_no_import_circles() -> None:
    found = modules()
    graph = {name: {t for t in imports(path) if t in found and t != name}
             for name, path in found.items()}  # fmt: skip
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        assert name not in trail, " -> ".join([*trail, name])
        if name in done:
            return
        for target in graph[name]:
            visit(target, [*trail, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_the_bitstream_reads_alone() -> None:
    """bitstream imports no torch and no constriction: it can be fuzzed and read alone."""
    for path in (ROOT / "bitstream").rglob("*.py"):
        source = path.read_text()
        assert "import torch" not in source and "constriction" not in source, path


def test_each_seed_has_its_stage_file() -> None:
    stages = ROOT / "codec" / "stages"
    for name, seed in (("masks", "000"), ("temporal", "001"), ("roi", "002"), ("scale", "004"),
                       ("post", "004")):  # fmt: skip
        assert f"seed {seed}" in (stages / f"{name}.py").read_text()[:600].lower(), name
