WITH pause AS MATERIALIZED (
    SELECT pg_sleep(coalesce((SELECT max(seconds) FROM testapp_sleepsetting), 0)) AS slept
)
SELECT o.id AS order_id
FROM testapp_order o, pause
