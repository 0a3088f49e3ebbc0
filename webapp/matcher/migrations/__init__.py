"""Alembic migrations of the matcher schema (run by ``facepp-matcher db upgrade`` or at start)."""
