"""Alembic migrations. ``api.cli`` drives them; see ``migrations.runner``."""
