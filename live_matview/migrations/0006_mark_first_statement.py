import importlib

from django.db import migrations

from live_matview import conf

# live_matview_mark() as 0002 made it, but the first statement of a transaction (every
# autocommit write) skips the transaction-local flag: reading and setting a custom setting
# was a third of what the capture trigger cost per autocommit save (about 20 µs of 60).
# statement_timestamp() equals transaction_timestamp() only in the transaction's first
# client message. Other statements of that message (a multi-statement string, or a BEGIN
# pipelined in the same microsecond) then also mark without the flag: a duplicate mark at
# worst, never a missing one. Later statements use the flag as before, so a long
# transaction still writes one mark per view.
MARK_FUNCTION = """
CREATE OR REPLACE FUNCTION {function_schema}.live_matview_mark(source oid) RETURNS void
LANGUAGE plpgsql AS $body$
BEGIN
    IF statement_timestamp() <> transaction_timestamp() THEN
        IF current_setting('live_matview.m' || source, true) = '1' THEN
            RETURN;
        END IF;
        PERFORM set_config('live_matview.m' || source, '1', true);
    END IF;
    INSERT INTO {schema}.live_matview_dirtymark (view_name, source, marked_at)
    SELECT s.view_name, source::regclass::text, now()
    FROM {schema}.live_matview_source s
    WHERE s.relid = source;
    IF current_setting('live_matview.notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('live_matview', '');
    END IF;
END
$body$
"""


def _write(schema_editor, template):
    from django.db.backends.postgresql.psycopg_any import sql

    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = sql.Identifier(cursor.fetchone()[0]).as_string(connection.connection)
        function_schema = sql.Identifier(conf.schema()).as_string(connection.connection)
        cursor.execute(template.format(schema=schema, function_schema=function_schema))


def mark_without_flag_first(apps, schema_editor):
    _write(schema_editor, MARK_FUNCTION)


def mark_as_before(apps, schema_editor):
    before = importlib.import_module("live_matview.migrations.0002_capture")
    _write(schema_editor, before.MARK_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [
        ("live_matview", "0005_refresh_function"),
    ]

    operations = [
        migrations.RunPython(mark_without_flag_first, mark_as_before),
    ]
