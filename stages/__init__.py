"""DVC stage entry points: each parses its params and calls the library (run as ``python -m stages.<name>``)."""
