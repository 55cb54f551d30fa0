"""Shapes that real projects' code took when they switched to live_matview (issue 11)."""

from __future__ import annotations

import io
import logging

import pytest
from django.db import transaction
from pgtrigger import registry as pgtrigger_registry

from live_matview import RefreshError
from live_matview.capture.triggers import TRIGGER_NAME
from live_matview.models import MaterializedViewRefreshLog
from live_matview.processor import forget_caches, sync_views
from live_matview.views import graph
from tests.helpers import assert_fresh, capture_trigger_names, execute, fetch
from tests.testapp.models import (
    Customer,
    CustomerTotals,
    Item,
    Order,
    OrderItemStats,
    OrderTagCounts,
)


@pytest.fixture
def broken_view(monkeypatch):
    """OrderTagCounts as a project had it: its view exists in the database, but the deployed
    code's get_query_from_queryset() raises NameError (a missing import)."""

    def get_query_from_queryset():
        return Tagg.objects.values("id")  # noqa: F821  (the bug under test)

    monkeypatch.setattr(
        OrderTagCounts, "get_query_from_queryset", staticmethod(get_query_from_queryset)
    )
    monkeypatch.setattr(graph, "_reported", set())
    forget_caches()
    yield OrderTagCounts
    forget_caches()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_one_broken_view_leaves_the_others_working(caplog):
    caplog.set_level(logging.INFO, logger="live_matview")
    customer = Customer.objects.create(name="Ada")
    with transaction.atomic():
        Order.objects.create(customer=customer, amount=30)
    Order.objects.create(customer=customer, amount=12)  # autocommit: another path
    assert_fresh(CustomerTotals)
    log = CustomerTotals.refresh()
    assert not log.failed

    # The writers' statements never logged an error of their own...
    assert not [r for r in caplog.records if "could not record a write" in r.getMessage()]
    # ...and the broken view was reported once, naming it and the fix, however many graphs
    # and source maps this process built since.
    forget_caches()
    CustomerTotals.refresh()
    reports = [r for r in caplog.records if r.name == "live_matview.views"]
    assert len(reports) == 1
    message = reports[0].getMessage()
    assert "testapp.OrderTagCounts cannot be built" in message
    assert "NameError: name 'Tagg' is not defined" in message
    assert "Fix the method" in message


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_refreshing_the_broken_view_fails_and_its_log_row_says_why():
    with pytest.raises(RefreshError, match="OrderTagCounts cannot be built") as excinfo:
        OrderTagCounts.refresh()
    row = MaterializedViewRefreshLog.objects.get(pk=excinfo.value.log_id)
    assert row.view_name == "testapp_ordertagcounts"
    assert row.failed
    assert "NameError: name 'Tagg' is not defined" in row.error
    assert row.concurrently is None  # nothing was run


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_a_write_that_dirties_the_broken_view_still_commits():
    """OrderTagCounts reads Order: its on-commit refresh fails, logged; the writer goes on."""
    customer = Customer.objects.create(name="Ada")
    with transaction.atomic():
        order = Order.objects.create(customer=customer, amount=5)
    assert Order.objects.filter(pk=order.pk).exists()
    failed = MaterializedViewRefreshLog.objects.filter(
        view_name="testapp_ordertagcounts", failed=True
    )
    assert failed.exists()
    assert_fresh(CustomerTotals)


# --- Triggers follow the declarations, whenever models load (item 5) ---------------------


@pytest.fixture
def late_models():
    """Models declared in the test app's real registry after apps were ready, removed again."""
    from django.apps import apps

    from live_matview.capture import triggers
    from live_matview.views.declaration import DBViewsRegistry

    declared: list = []
    yield declared
    for model in declared:
        uri = f"{model._meta.label}:{triggers.TRIGGER_NAME}"
        if uri in pgtrigger_registry._registry:
            triggers.trigger().unregister(model)
        apps.all_models[model._meta.app_label].pop(model._meta.model_name, None)
        DBViewsRegistry.pop(model._meta.db_table, None)
        triggers.loaded_late.discard((model._meta.label, "testapp.LateVote"))
        triggers._pending.discard(("testapp", "latevote"))
    apps.clear_cache()
    forget_caches()


@pytest.mark.django_db
def test_a_source_model_that_loads_after_its_view_gets_the_trigger(late_models):
    """A real project's refresh_on = ["photition_models.Vote"]: the model's module was
    imported after the view's, so no trigger reached its migrations."""
    from django.core.management import call_command
    from django.db import models

    from live_matview import MaterializedViewModel

    holder: dict = {}
    view = type(
        "LateVoteCounts",
        (MaterializedViewModel,),
        {
            "__module__": "tests.testapp.models",
            "refresh_on": ["testapp.LateVote"],
            "id": models.BigIntegerField(primary_key=True),
            "get_query_from_queryset": staticmethod(lambda: holder["vote"].objects.values("id")),
        },
    )
    late_models.append(view)
    vote = type(
        "LateVote",
        (models.Model,),
        {"__module__": "tests.testapp.models.votes", "choice": models.IntegerField()},
    )
    late_models.append(vote)
    holder["vote"] = vote

    assert pgtrigger_registry._registry[f"testapp.LateVote:{TRIGGER_NAME}"][0] is vote
    out = io.StringIO()
    call_command("makemigrations", "testapp", dry_run=True, stdout=out)
    assert "Create model LateVote" in out.getvalue()
    assert "Create trigger live_matview on model latevote" in out.getvalue()

    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)
    assert "live_matview.W002" in err.getvalue()
    assert "testapp.LateVoteCounts.refresh_on names 'testapp.LateVote'" in err.getvalue()
    assert "Import tests.testapp.models.votes from the models module" in err.getvalue()


@pytest.mark.django_db
def test_the_sync_drops_capture_triggers_no_declaration_needs():
    """After a view switched from "auto" to a proxy of auth.User, auth_user kept the
    trigger installed for "auto"."""
    from django.contrib.auth.models import User

    from live_matview.capture.triggers import trigger

    forget_caches()
    trigger().install(User)
    execute(
        "CREATE FUNCTION other_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;"
        "CREATE TRIGGER pgtrigger_someone_else AFTER INSERT ON auth_user "
        "FOR EACH STATEMENT EXECUTE PROCEDURE other_fn()"
    )
    stale = trigger().get_pgid(User)
    assert ("auth_user", stale) in capture_trigger_names()
    plan = sync_views()
    assert f"stale capture trigger {stale} dropped from public.auth_user" in plan.capture_changes
    assert ("auth_user", stale) not in capture_trigger_names()
    assert fetch("SELECT 1 FROM pg_trigger WHERE tgname = 'pgtrigger_someone_else'") == [(1,)]
    # The declared ones stay.
    assert {"testapp_order", "testapp_customer"} <= {t for t, _ in capture_trigger_names()}
    forget_caches()


# --- SQL-file views with an incomplete refresh_on (item 8) --------------------------------


@pytest.mark.django_db
def test_a_sql_file_view_missing_a_table_it_reads_is_warned_about(monkeypatch):
    from django.core.management import call_command

    monkeypatch.setattr(OrderItemStats, "refresh_on", [Order])  # it joins testapp_item too
    forget_caches()
    err = io.StringIO()
    call_command("check", databases=["default"], stdout=io.StringIO(), stderr=err)
    output = [line for line in err.getvalue().splitlines() if "OrderItemStats" in line]
    assert len(output) == 2, output  # the warning and its hint, for testapp_item only
    assert "live_matview.W003" in output[0]
    assert "testapp.OrderItemStats reads public.testapp_item (testapp.Item)" in output[0]
    assert 'Add "testapp.Item" to testapp.OrderItemStats.refresh_on' in output[1]

    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)  # without the database: silent
    assert "W003" not in err.getvalue()

    monkeypatch.setattr(OrderItemStats, "refresh_on", [Order, Item])
    forget_caches()
    err = io.StringIO()
    call_command("check", databases=["default"], stdout=io.StringIO(), stderr=err)
    assert "OrderItemStats" not in err.getvalue()
    forget_caches()


# --- A generated capture-trigger migration works as generated (item 2) -------------------

BLOG_MODELS = """
from django.db import models
from live_matview import MaterializedViewModel


class Post(models.Model):
    title = models.CharField(max_length=100)


class PostTitle(MaterializedViewModel):
    refresh_on = [Post]
    create_pkey_index = True

    id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=100)

    @staticmethod
    def get_query_from_queryset():
        return Post.objects.values("id", "title")
"""

BLOG_DATA_MIGRATION = """
from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("blog", "Post").objects.create(title="Hello")


class Migration(migrations.Migration):
    dependencies = [("blog", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
"""

BLOG_SETTINGS = """
SECRET_KEY = "blog"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "pgtrigger",
    "live_matview",
    "blog",
]
DATABASES = {{"default": {database!r}}}
"""


@pytest.fixture
def blog_project(tmp_path, django_db_blocker):
    """A new project's app, as startapp and the quickstart make it, in a fresh database."""
    import uuid

    from django.db import connection

    dbname = f"fresh_blog_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{dbname}"')
        settings = {
            key: connection.settings_dict[key]
            for key in ("ENGINE", "USER", "PASSWORD", "HOST", "PORT")
        }
    app = tmp_path / "blog"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(BLOG_MODELS)
    database = {**settings, "NAME": dbname}
    (tmp_path / "blog_settings.py").write_text(BLOG_SETTINGS.format(database=database))
    try:
        yield tmp_path, dbname
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def manage(project, *args: str) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "blog_settings",
        "PYTHONPATH": os.pathsep.join([str(project), str(root)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_a_generated_trigger_migration_runs_on_a_fresh_database(blog_project):
    project, dbname = blog_project
    manage(project, "makemigrations", "blog")
    generated = (project / "blog" / "migrations" / "0001_initial.py").read_text()
    assert "CaptureTriggerSql" in generated  # the trigger is in it...
    assert '"live_matview"' not in generated  # ...and nothing points at our migrations
    (project / "blog" / "migrations" / "0002_seed.py").write_text(BLOG_DATA_MIGRATION)

    plan = manage(project, "migrate", "--plan")
    # The order that failed: the data migration writes before live_matview's 0002.
    assert plan.index("blog.0002_seed") < plan.index("live_matview.0002_capture")
    manage(project, "migrate")  # failed: function public.live_matview_mark(oid) does not exist
    manage(project, "migrate_with_views")

    # The real function replaced the placeholder: a write from any client marks the view.
    from tests.helpers import raw_connection

    conn = raw_connection(dbname)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("INSERT INTO blog_post (title) VALUES ('Second')")
        with conn.cursor() as cursor:
            cursor.execute("SELECT view_name FROM live_matview_dirtymark")
            assert cursor.fetchall() == [("blog_posttitle",)]
            cursor.execute("SELECT title FROM blog_posttitle")
            assert cursor.fetchall() == [("Hello",)]  # created with the seeded row
    finally:
        conn.close()
