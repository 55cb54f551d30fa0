"""The package's stages import only downwards, hold no import cycle, and stay small.

See docs/architecture.md; ``python -m tests.import_graph`` prints the graph checked here.
"""

from __future__ import annotations

from tests.import_graph import Import, find_cycle, imports, modules, stage_of

#: The only imports allowed inside functions, with the reason each must stay there.
LOCAL_IMPORTS = {
    ("apps", "checks"): "Django imports apps.py before models are loaded",
    ("apps", "capture.statements"): "Django imports apps.py before models are loaded",
    ("apps", "capture.triggers"): "Django imports apps.py before models are loaded",
    ("apps", "refresh.dispatch"): "Django imports apps.py before models are loaded",
    ("apps", "migrate_hooks"): "Django imports apps.py before models are loaded",
    ("refresh.dispatch", "refresh.celery_backend"): "Celery is an optional extra",
    ("testing", "processor"): "pytest loads the plugin before Django is set up",
    ("testing", "refresh.background"): "pytest loads the plugin before Django is set up",
    ("testing.pytest_plugin", "testing"): "pytest loads the plugin before Django is set up",
}
MAX_MODULE_LINES = 400


def _describe(edges: list[Import]) -> list[str]:
    return [f"{e.importer} (line {e.line}) imports {e.imported}" for e in edges]


def test_every_module_belongs_to_a_stage():
    for module in modules():
        stage_of(module)  # raises, naming the module, when it has none


def test_no_stage_imports_a_stage_above_it():
    upward = [e for e in imports() if stage_of(e.importer) < stage_of(e.imported)]
    assert _describe(upward) == []


def test_the_modules_import_no_cycle():
    assert find_cycle(imports()) is None


def test_imports_inside_functions_are_only_the_allowed_ones():
    local = [
        e for e in imports() if e.in_function and (e.importer, e.imported) not in LOCAL_IMPORTS
    ]
    assert _describe(local) == []


def test_the_checker_sees_upward_and_cyclic_imports():
    """The rules above would pass vacuously if the graph were read wrong."""
    edges = imports()
    assert any(e.importer == "refresh.full" and e.imported == "schema.ddl" for e in edges)
    assert stage_of("views.query") < stage_of("refresh.full")
    fake = [Import("a", "b", 1, False, False), Import("b", "a", 2, True, False)]
    assert find_cycle(fake) == ["a", "b", "a"]


def test_no_module_is_longer_than_the_limit():
    long = {
        name: lines
        for name, path in modules().items()
        if "migrations" not in name
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
