"""Fault injection: real processes, real files, real failures, counted.

``python -m tests.faults`` runs every experiment at full size and prints one table per
experiment (attempts, failures, acknowledged writes lost, what the user saw); ``pytest
tests/faults`` runs the quick version of each, on SQLite and PostgreSQL, and fails on any lost
acknowledged write. docs/reliability.md publishes the full run.
"""
