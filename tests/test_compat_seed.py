"""The rest of django-materialized-view's public names: its tracking model, the command's
helper, and the processor's step methods (issue 11, item 6)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from django.db import DatabaseError, connection, transaction

from live_matview.models import ManagedView
from live_matview.processor import MaterializedViewsProcessor, forget_caches
from tests.helpers import execute, view_oid
from tests.testapp.models import BigSpenders, CustomerTotals, ItemSales

LEGACY_TABLE = "django_materialized_view_materializedviewmigrations"

# The table as django-materialized-view 0.1.6.2's migration creates it.
LEGACY_DDL = f"""
CREATE TABLE {LEGACY_TABLE} (
    id bigserial PRIMARY KEY,
    applied timestamptz NOT NULL,
    app varchar(255) NOT NULL,
    view_name varchar(255) NOT NULL,
    hash varchar(255) NOT NULL,
    deleted boolean NOT NULL
);
CREATE UNIQUE INDEX one_active_view_per_model ON {LEGACY_TABLE} (app, view_name)
    WHERE NOT deleted;
"""


@pytest.fixture
def fresh_caches():
    forget_caches()
    yield
    forget_caches()  # the sync's own on-commit reset never runs inside a test transaction


def test_tracking_model_is_importable_and_creates_no_table_of_ours():
    from django.apps import apps

    from live_matview.models import MaterializedViewMigrations

    assert MaterializedViewMigrations._meta.db_table == LEGACY_TABLE
    assert {f.name for f in MaterializedViewMigrations._meta.fields} == {
        "id",
        "applied",
        "app",
        "view_name",
        "hash",
        "deleted",
    }
    assert not MaterializedViewMigrations._meta.managed
    assert MaterializedViewMigrations not in apps.get_models()  # no migration of ours


@pytest.mark.django_db
def test_tracking_model_reads_and_writes_the_old_table():
    from live_matview.models import MaterializedViewMigrations

    assert LEGACY_TABLE not in connection.introspection.table_names()
    execute(LEGACY_DDL)
    first = MaterializedViewMigrations.objects.create(app="shop", view_name="totals", hash="a")
    second = MaterializedViewMigrations.objects.create(app="shop", view_name="totals", hash="b")
    first.refresh_from_db()
    assert first.deleted  # retired by the new active row, as the old save() did
    assert not second.deleted
    assert str(second) == "shop_totals"


@pytest.mark.django_db
def test_extract_mv_name_reads_postgresqls_error():
    from live_matview.management.commands.migrate_with_views import extract_mv_name

    execute("CREATE TABLE compat_t (x integer)")
    execute("CREATE MATERIALIZED VIEW compat_mv AS SELECT x FROM compat_t")
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        execute("ALTER TABLE compat_t ALTER COLUMN x TYPE bigint")
    detail = excinfo.value.__cause__.diag.message_detail
    assert extract_mv_name(detail) == "compat_mv"
    assert extract_mv_name("some other error") is None


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_caches")
def test_step_methods_create_and_report():
    execute(f"DROP MATERIALIZED VIEW {ItemSales._meta.db_table}")
    processor = MaterializedViewsProcessor()
    processor.mark_to_be_applied_new_views()
    assert processor.views_to_create == {"testapp_itemsales"}
    assert view_oid(ItemSales) is None  # marking changes nothing
    processor.create_views()
    assert view_oid(ItemSales) is not None
    assert processor.created_views == {"testapp_itemsales"}
    assert processor.views_to_create == set()
    processor.recreate_views()  # nothing left to do: still fine
    assert processor.recreated_views == set()


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_caches")
def test_step_methods_delete_views_whose_model_is_gone():
    execute("CREATE MATERIALIZED VIEW testapp_gone AS SELECT 1 AS id")
    ManagedView.objects.create(view_name="testapp_gone", app_label="testapp", model_name="gone")
    processor = MaterializedViewsProcessor()
    processor.mark_to_be_deleted_old_views()
    assert processor.views_to_delete == {"testapp_gone"}
    processor.delete_views()
    assert processor.deleted_views == {"testapp_gone"}
    assert "testapp_gone" not in connection.introspection.table_names(include_views=True)


@pytest.mark.django_db
def test_sorted_by_dependencies_puts_parents_first():
    processor = MaterializedViewsProcessor()
    ordered = processor.get_view_list_sorted_by_dependencies({"testapp_customertotals"})
    assert isinstance(ordered, OrderedDict)
    names = list(ordered)
    assert names[0] == CustomerTotals._meta.db_table
    assert BigSpenders._meta.db_table in names
    assert ItemSales._meta.db_table not in names
    assert list(ordered.values()) == sorted(ordered.values(), reverse=True)


def test_old_constants_are_there():
    assert MaterializedViewsProcessor.CREATE_COMMAND_TEMPLATE == (
        "CREATE MATERIALIZED VIEW %s AS %s;"
    )
    assert MaterializedViewsProcessor.DELETE_VIEW_COMMAND_TEMPLATE == (
        "DROP MATERIALIZED VIEW IF EXISTS %s %s;"
    )
