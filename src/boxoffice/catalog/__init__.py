"""Catalogue: events, venues, genres (categories) and ticket tiers, and how fans search them."""
