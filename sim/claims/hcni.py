"""Stub: being written (issue 7)."""
