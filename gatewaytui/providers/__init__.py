"""Upstream providers, one module each, all offering the same interface (see ``base``)."""
