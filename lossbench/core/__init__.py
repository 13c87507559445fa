"""Errors, atomic file writes, artifact paths, the thread policy and the stage runner: what every step shares."""
