"""API key scopes: ``api_keys.scopes``; keys made before scopes existed get the terminal's ``enrol score``.

Such keys could do everything, and every one of them was a terminal's (the only
client), so they keep what a terminal needs and lose the ``admin`` powers
(listing subject ids, exporting any block, replacing the bundle). Give a key
``admin`` by creating a new one: ``facepp-matcher create-api-key --scope admin``.

Revision ID: 0002_api_key_scopes
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_api_key_scopes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

#: The scopes of the keys that exist when the column is added.
LEGACY_SCOPES = "enrol score"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default=LEGACY_SCOPES))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", server_default=None)  # new keys always name their scopes


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
