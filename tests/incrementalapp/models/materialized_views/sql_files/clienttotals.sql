-- per client: sales, lines, the sales' amount and the lines' quantity (zeros when none)
SELECT c.id AS client_id,
       count(DISTINCT s.id)::int AS sales,
       count(l.id)::int AS lines,
       coalesce((SELECT sum(s2.amount) FROM incrementalapp_sale s2 WHERE s2.client_id = c.id), 0)
           AS amount,
       coalesce(sum(l.quantity), 0)::bigint AS quantity
FROM incrementalapp_client c
LEFT JOIN incrementalapp_sale s ON s.client_id = c.id
LEFT JOIN incrementalapp_saleline l ON l.sale_id = s.id
GROUP BY c.id;
