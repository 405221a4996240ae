"""Packaged training configurations (YAML)."""
