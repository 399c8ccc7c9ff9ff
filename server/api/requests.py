"""Placeholder: filled in by the requests work."""
BLUEPRINTS = ()
