"""Tests of bot/staff/: the staff web app and `antam staff`."""
