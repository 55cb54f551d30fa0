from django.db import migrations

from live_matview import conf

# One refresh in one call: the view's advisory lock (tried first, then waited for within
# a bound), the catalog checks that choose CONCURRENTLY or plain, the marks it consumes,
# the REFRESH in a subtransaction (so that a failure keeps the marks and is still logged,
# also inside the caller's transaction), the dependents' marks, the log row and the
# view's state row. Python sends this one statement instead of a dozen round trips.
#
# ``p_kind`` names what to run between the marks and the log: 'full' is the whole view;
# a by-key refresh can take the same lock, log and state path with a kind of its own.
# ``p_retry``: a serialization failure or a deadlock of the REFRESH is raised rather than
# logged, so that the caller runs the whole transaction again.
REFRESH_FUNCTION = """
CREATE OR REPLACE FUNCTION {function_schema}.live_matview_refresh(
    p_view text,                  -- the view's quoted name: the lock key and to_regclass
    p_view_name text,             -- Meta.db_table: marks, log and state rows
    p_label text,                 -- app_label.ModelName, for error messages
    p_requested boolean,          -- CONCURRENTLY: true required, false never, null if usable
    p_trigger text,
    p_database text,
    p_dependents text[],          -- views to mark once this one is refreshed
    p_lock_namespace integer,
    p_wait boolean,               -- false: give up at once when another process holds it
    p_max_wait double precision,  -- seconds to wait at most; null: no limit
    p_only_if_marked boolean,
    p_nested boolean,             -- inside the caller's transaction: reset capture flags
    p_retry boolean,
    p_problem text,               -- fail without refreshing (the code and view disagree)
    p_app_label text,
    p_model_name text,
    p_retry_base double precision,
    p_retry_max double precision,
    p_kind text DEFAULT 'full'
) RETURNS TABLE (
    r_outcome text,               -- refreshed, failed, busy, handed_off, clean
    r_log_id bigint,
    r_concurrently boolean,
    r_reason text,
    r_error text,
    r_sqlstate text,
    r_started_at timestamptz,
    r_updated_at timestamptz,
    r_lock_wait interval,
    r_duration interval
)
LANGUAGE plpgsql AS $body$
DECLARE
    started timestamptz := clock_timestamp();
    locked timestamptz;
    ended timestamptz;
    got boolean;
    old_timeout text;
    rel oid;
    populated boolean;
    conc boolean;
    why text := '';
    err text;
    code text;
    detail text;
    hint text;
    spent interval;
    holder integer;
    new_id bigint;
BEGIN
    got := pg_try_advisory_xact_lock(p_lock_namespace, hashtext(p_view));
    IF NOT got AND p_wait THEN
        IF p_max_wait IS NULL THEN
            PERFORM pg_advisory_xact_lock(p_lock_namespace, hashtext(p_view));
            got := true;
        ELSIF p_max_wait > 0 THEN
            old_timeout := current_setting('lock_timeout');
            BEGIN
                -- lock_timeout = 0 would mean no limit: at least 1 ms.
                PERFORM set_config(
                    'lock_timeout', greatest(1, round(p_max_wait * 1000))::bigint || 'ms', true
                );
                PERFORM pg_advisory_xact_lock(p_lock_namespace, hashtext(p_view));
                got := true;
            EXCEPTION WHEN lock_not_available THEN
                got := false;
            END;
            PERFORM set_config('lock_timeout', old_timeout, true);
        END IF;
    END IF;
    locked := clock_timestamp();
    IF NOT got THEN
        IF NOT p_wait THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::boolean, ''::text, ''::text,
                NULL::text, started, locked, locked - started, NULL::interval;
            RETURN;
        END IF;
        -- Two-int advisory locks show in pg_locks as unsigned oids.
        SELECT l.pid INTO holder FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = (p_lock_namespace::bigint & 4294967295)::oid
          AND l.objid = (hashtext(p_view)::bigint & 4294967295)::oid
        LIMIT 1;
        why := left(format(
            'waited %ss for the lock, which %s holds: handed to the background refresher',
            round(extract(epoch FROM locked - started)::numeric, 1),
            coalesce('process ' || holder, 'another process')
        ), 255);
        INSERT INTO {schema}.live_matview_materializedviewrefreshlog
            (view_name, database, started_at, updated_at, duration, lock_wait, failed,
             "concurrently", reason, trigger, error, kind)
        VALUES (p_view_name, p_database, started, clock_timestamp(), NULL, locked - started,
                false, NULL, why, p_trigger, '', 'full')
        RETURNING id INTO new_id;
        RETURN QUERY SELECT 'handed_off'::text, new_id, NULL::boolean, why, ''::text,
            NULL::text, started, locked, locked - started, NULL::interval;
        RETURN;
    END IF;

    IF p_only_if_marked AND NOT EXISTS (
        SELECT 1 FROM {schema}.live_matview_dirtymark WHERE view_name = p_view_name
    ) THEN
        -- A refresh that started after the caller's commit consumed them: covered.
        RETURN QUERY SELECT 'clean'::text, NULL::bigint, NULL::boolean, ''::text, ''::text,
            NULL::text, started, locked, locked - started, NULL::interval;
        RETURN;
    END IF;

    IF p_problem IS NOT NULL THEN
        err := p_problem;
    ELSE
        SELECT c.oid, c.relispopulated INTO rel, populated
        FROM pg_class c WHERE c.oid = to_regclass(p_view) AND c.relkind = 'm';
        IF rel IS NULL THEN
            err := format(
                '%s: materialized view %s does not exist; run ./manage.py migrate_with_views.',
                p_label, p_view
            );
        ELSE
            IF NOT populated THEN
                conc := false;
                why := 'not populated yet, so CONCURRENTLY is impossible';
            ELSIF p_requested IS false THEN
                conc := false;
                why := 'plain refresh requested';
            ELSIF p_requested THEN
                conc := true;
                why := 'CONCURRENTLY requested';
            ELSIF EXISTS (
                SELECT 1 FROM pg_index
                WHERE indrelid = rel AND indisunique AND indisvalid
                  AND indpred IS NULL AND indexprs IS NULL
            ) THEN
                conc := true;
                why := 'populated, with a unique index';
            ELSE
                conc := false;
                why := 'no unique index usable by CONCURRENTLY';
            END IF;
            BEGIN
                -- Marks committed after this DELETE's snapshot stay: another refresh.
                DELETE FROM {schema}.live_matview_dirtymark WHERE view_name = p_view_name;
                IF p_nested THEN
                    -- The writer's own marks were among them: its next write marks again.
                    PERFORM set_config('live_matview.m' || s.relid, '', true)
                    FROM {schema}.live_matview_source s WHERE s.view_name = p_view_name;
                END IF;
                IF p_kind = 'full' THEN
                    EXECUTE format(
                        'REFRESH MATERIALIZED VIEW %s%s',
                        CASE WHEN conc THEN 'CONCURRENTLY ' ELSE '' END,
                        rel::regclass
                    );
                ELSE
                    RAISE EXCEPTION 'live_matview_refresh: unknown kind %', p_kind;
                END IF;
                INSERT INTO {schema}.live_matview_dirtymark (view_name, source, marked_at)
                SELECT child, p_view_name, now() FROM unnest(p_dependents) AS child;
            EXCEPTION WHEN OTHERS THEN
                IF p_retry AND SQLSTATE IN ('40001', '40P01') THEN
                    RAISE;  -- the caller runs the whole transaction again
                END IF;
                GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, code = RETURNED_SQLSTATE,
                    detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
                err := err
                    || CASE WHEN detail <> '' THEN E'\\nDETAIL:  ' || detail ELSE '' END
                    || CASE WHEN hint <> '' THEN E'\\nHINT:  ' || hint ELSE '' END;
            END;
        END IF;
    END IF;
    ended := clock_timestamp();
    spent := ended - locked;

    INSERT INTO {schema}.live_matview_materializedviewrefreshlog
        (view_name, database, started_at, updated_at, duration, lock_wait, failed,
         "concurrently", reason, trigger, error, kind)
    VALUES (p_view_name, p_database, started, ended, spent, locked - started,
            err IS NOT NULL, conc, why, p_trigger, coalesce(err, ''), 'full')
    RETURNING id INTO new_id;

    -- The view's state: back-off after failures, cleared by a success.
    IF err IS NULL THEN
        UPDATE {schema}.live_matview_managedview
        SET consecutive_failures = 0, next_retry_at = NULL, last_error = '',
            last_refreshed_at = ended
        WHERE view_name = p_view_name;
    ELSE
        UPDATE {schema}.live_matview_managedview
        SET consecutive_failures = consecutive_failures + 1,
            next_retry_at = ended + make_interval(secs => least(
                p_retry_max, p_retry_base * power(2::float8, least(consecutive_failures, 1000))
            )),
            last_error = err
        WHERE view_name = p_view_name;
    END IF;
    IF NOT FOUND THEN
        INSERT INTO {schema}.live_matview_managedview
            (view_name, app_label, model_name, indexes, index_digest, created_at, updated_at,
             last_refreshed_at, consecutive_failures, next_retry_at, last_error)
        VALUES (
            p_view_name, p_app_label, p_model_name, '[]', '', now(), now(),
            CASE WHEN err IS NULL THEN ended END,
            CASE WHEN err IS NULL THEN 0 ELSE 1 END,
            CASE WHEN err IS NOT NULL
                THEN ended + make_interval(secs => least(p_retry_max, p_retry_base)) END,
            coalesce(err, '')
        );
    END IF;

    RETURN QUERY SELECT CASE WHEN err IS NULL THEN 'refreshed' ELSE 'failed' END, new_id,
        conc, why, coalesce(err, ''), code, started, ended, locked - started, spent;
END
$body$
"""

SIGNATURE = (
    "live_matview_refresh(text, text, text, boolean, text, text, text[], integer, boolean, "
    "double precision, boolean, boolean, boolean, text, text, text, double precision, "
    "double precision, text)"
)


def create_refresh_function(apps, schema_editor):
    from django.db.backends.postgresql.psycopg_any import sql

    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = sql.Identifier(cursor.fetchone()[0]).as_string(connection.connection)
        # Beside live_matview_mark(): where LIVE_MATVIEW_SCHEMA says.
        function_schema = sql.Identifier(conf.schema()).as_string(connection.connection)
        cursor.execute(REFRESH_FUNCTION.format(schema=schema, function_schema=function_schema))


def drop_refresh_function(apps, schema_editor):
    from django.db.backends.postgresql.psycopg_any import sql

    connection = schema_editor.connection
    function_schema = sql.Identifier(conf.schema()).as_string(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {function_schema}.{SIGNATURE}")


class Migration(migrations.Migration):
    """The server-side refresh: one statement per refresh instead of a dozen."""

    dependencies = [
        ("live_matview", "0004_incremental"),
    ]

    operations = [
        migrations.RunPython(create_refresh_function, drop_refresh_function),
    ]
