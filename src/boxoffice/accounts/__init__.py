"""Accounts: users, roles, passwords, sign-in sessions and their tokens."""
