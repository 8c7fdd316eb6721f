"""Tests of bot/: the command line, the runtime at its edges, workers, logs and metrics."""
