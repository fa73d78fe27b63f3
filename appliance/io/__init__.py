"""stratum1."""
