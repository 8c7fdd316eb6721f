"""Fake platform servers for end-to-end tests; every one listens on 127.0.0.1 only."""
