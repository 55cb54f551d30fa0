-- Every product, sold or not: a LEFT JOIN keeps unsold products with zeros.
SELECT
    p.id AS product_id,
    p.sku,
    p.name,
    count(DISTINCT l.order_id) AS orders,
    coalesce(sum(l.quantity), 0) AS units,
    coalesce(sum(l.quantity * l.unit_price), 0)::numeric(12, 2) AS revenue
FROM shop_product AS p
LEFT JOIN shop_orderline AS l ON l.product_id = p.id
GROUP BY p.id, p.sku, p.name
