"""Persistence for An Tâm: database, encryption, pseudonyms, retention, migrations.

Nothing here imports any other part of the project.
"""
