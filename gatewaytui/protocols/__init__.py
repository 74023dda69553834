"""Client-facing wire formats, one module each, all offering the same functions (see ``base``)."""
