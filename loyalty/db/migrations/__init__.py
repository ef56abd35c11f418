"""Alembic migrations for loyalty.db.tables (run them with ``loyalty migrate`` or loyalty.db.migrate)."""
