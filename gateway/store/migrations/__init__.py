"""Alembic migrations for the store, run by ``Store.open`` (no alembic.ini needed)."""
