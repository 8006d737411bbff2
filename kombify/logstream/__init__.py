"""Live log streams: stored lines of a run, then its new ones as they are committed."""
