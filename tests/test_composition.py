"""The server is composed from an explicit component list; storage and the areas import no composition code."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infersight.config import parse_config
from infersight.server.tables import all_ddl

SRC = Path(__file__).resolve().parents[1] / "src" / "infersight"


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def area_modules(*exclude: str):
    for path in SRC.rglob("*.py"):
        top = path.relative_to(SRC).parts[0]
        if top not in exclude:
            yield path


def test_areas_never_import_the_cli_or_the_composition_root():
    bad = {str(p.relative_to(SRC)): sorted(m for m in imports(p) if m.split(".")[:2] in (["infersight", "cli"],
                                                                                        ["infersight", "server"]))
           for p in area_modules("cli", "server")}
    assert {k: v for k, v in bad.items() if v} == {}


def test_storage_imports_no_area_and_nothing_is_imported_by_name():
    for path in (SRC / "storage").rglob("*.py"):
        ours = {m for m in imports(path) if m.startswith("infersight") and not m.startswith("infersight.storage")}
        assert ours <= {"infersight.config", "infersight.semconv"}, path
    for path in SRC.rglob("*.py"):
        assert "import_module(" not in path.read_text(), path


def test_default_components_own_every_table_once(store):
    pytest.importorskip("pyarrow")
    from infersight.gateway.auth import PUBLIC
    from infersight.server.app import build_app
    from infersight.server.components import default_components

    cfg = parse_config({"server": {"storage": {"database": store.database}}})
    components = default_components(cfg, store)
    assert len({c.name for c in components}) == len(components)
    assert tuple(d for c in components for d in c.ddl) == all_ddl()
    public = build_app(cfg, store, components)[PUBLIC]
    assert all(p in public for p in ("/healthz", "/readyz", "/", "/ui/", "/ui/static/app.js"))
    assert "/api/v1/query" not in public and "/ui/static/../x" not in public
