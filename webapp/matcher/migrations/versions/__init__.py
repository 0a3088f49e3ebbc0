"""Alembic revision scripts of the matcher schema."""
