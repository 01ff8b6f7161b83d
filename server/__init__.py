"""The server: gateway batches in, NPS figures and alerts out.

ingest/ (judge, prepare, store once) -> analytics/ (rollups, figures) -> api/ and
dashboard/; alerts/ opens and follows alerts; realtime/ tells listeners; db/ holds the
engine, the dialect SQL and the migrations; identity/ the tokens and the device
registry. `app.create_app` wires them; nothing runs at import.
"""
