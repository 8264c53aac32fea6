"""Media inspection helpers (ffprobe)."""
