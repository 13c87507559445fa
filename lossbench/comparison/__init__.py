"""The comparison of every run: verdicts with intervals, tables, figures."""
