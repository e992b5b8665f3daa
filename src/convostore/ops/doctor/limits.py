"""Thresholds of doctor's checks."""

from __future__ import annotations

from datetime import timedelta

QUICK_CHECK_ABOVE_BYTES = 256 * 1024 * 1024
BACKUP_MAX_AGE = timedelta(days=2)
