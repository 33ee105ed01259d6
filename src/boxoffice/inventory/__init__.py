"""Inventory: the stock of each ticket tier, kept in shards (ARCHITECTURE §5)."""
