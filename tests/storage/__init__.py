"""Tests of storage/: the database, records, keys and the transaction helper."""
