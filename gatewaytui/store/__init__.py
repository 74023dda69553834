"""Durable state in SQLite: one writer, many readers, schema by migrations."""
