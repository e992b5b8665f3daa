"""Import of the legacy JSON conversation tree (see docs/migration.md)."""
