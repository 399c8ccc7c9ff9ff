"""Placeholder: filled in by the ops work."""
BLUEPRINTS = ()
