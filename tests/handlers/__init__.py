"""Tests of handlers/: the pure engine, its flows and its button payloads."""
