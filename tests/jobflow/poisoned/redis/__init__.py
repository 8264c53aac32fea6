"""Stands in for a machine without the [distributed] extra: importing it fails as if not installed."""

raise ImportError("No module named 'redis' (tests/jobflow/poisoned)")
