"""The source tables: customers, products and the orders that both views read."""
