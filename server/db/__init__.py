"""The database: engine (engines, sessions, writers' turn, Alembic upgrade), sql
(the dialect SQL: upserts, bulk writes, staging), migrations/ (Alembic revisions).
Every other module reaches the database through these.
"""
