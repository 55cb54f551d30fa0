SELECT o.customer_id, count(i.id)::integer AS items
FROM testapp_order o
JOIN testapp_item i ON i.order_id = o.id
GROUP BY o.customer_id
