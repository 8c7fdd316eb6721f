"""Helpers shared by test modules (never a test module's own private helpers)."""
