-- Quantity sold per SKU; a comment and a trailing semicolon, as people write them.
SELECT sku, sum(quantity)::integer AS quantity
FROM testapp_item
GROUP BY sku;
