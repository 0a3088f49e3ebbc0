"""Keep each compactly enrolled template beside its packed block (the fast 1:1 path).

Revision ID: 0003_subject_templates
Revises: 0002_api_key_scopes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_subject_templates"
down_revision = "0002_api_key_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(sa.Column("template", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("template")
