"""Operator jobs (backup, verify, restore ...), one module per job; the CLI wraps them."""
