"""Alembic environment: runs on the engine the app hands over (no URL in an ini file)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import server.analytics.rollup_tables  # noqa: F401
import server.models  # noqa: F401  (registers the tables)

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
