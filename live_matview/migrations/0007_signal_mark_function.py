from django.db import migrations

from live_matview import conf

# What an autocommit write in signals mode sends in front of itself, in the same string:
# one round trip and one implicit transaction for the marks and the write. It runs first,
# so should it fail, the server stops there and the write has not run; the error's context
# names this function, which tells such a failure apart from one of the write (the client
# then runs the write alone). It returns the marks' ids, which psycopg 3 reads from the
# first result; psycopg 2 sees only the last result (the write's), so with ``p_report`` it
# gets the ids as a NOTICE, for the rare write that changed nothing and must leave no mark.
SIGNAL_MARK_FUNCTION = """
CREATE OR REPLACE FUNCTION {function_schema}.live_matview_signal_mark(
    p_source text, p_views text[], p_report boolean DEFAULT false
) RETURNS bigint[]
LANGUAGE plpgsql AS $body$
DECLARE
    ids bigint[];
BEGIN
    WITH marked AS (
        INSERT INTO {schema}.live_matview_dirtymark (view_name, source, marked_at)
        SELECT name, p_source, now() FROM unnest(p_views) AS name
        RETURNING id
    )
    SELECT array_agg(id) INTO ids FROM marked;
    -- Like every mark Django writes (docs/settings.md), it wakes workers whatever
    -- live_matview.notify says; only the trigger reads that.
    PERFORM pg_notify('live_matview', '');
    IF p_report THEN
        RAISE NOTICE 'live_matview_signal_mark ids %', ids;
    END IF;
    RETURN ids;
END
$body$
"""

SIGNATURE = "live_matview_signal_mark(text, text[], boolean)"


def create_signal_mark_function(apps, schema_editor):
    from django.db.backends.postgresql.psycopg_any import sql

    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = sql.Identifier(cursor.fetchone()[0]).as_string(connection.connection)
        # Beside live_matview_mark(): where LIVE_MATVIEW_SCHEMA says.
        function_schema = sql.Identifier(conf.schema()).as_string(connection.connection)
        cursor.execute(SIGNAL_MARK_FUNCTION.format(schema=schema, function_schema=function_schema))


def drop_signal_mark_function(apps, schema_editor):
    from django.db.backends.postgresql.psycopg_any import sql

    connection = schema_editor.connection
    function_schema = sql.Identifier(conf.schema()).as_string(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {function_schema}.{SIGNATURE}")


class Migration(migrations.Migration):
    """Signals mode: an autocommit write and its marks in one round trip."""

    dependencies = [
        ("live_matview", "0006_mark_first_statement"),
    ]

    operations = [
        migrations.RunPython(create_signal_mark_function, drop_signal_mark_function),
    ]
