"""Issued tickets and their signed codes."""
