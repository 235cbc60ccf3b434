"""Experiment tracking: the service, the fluent SDK, search parsing and run metadata."""
