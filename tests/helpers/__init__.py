"""Helpers shared by test modules (bot configs, rows, queries): no test module imports another."""
