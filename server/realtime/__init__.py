"""Live updates: ingest and alerts -> bus (the in-process publish/subscribe behind
SSE and webhooks) -> relay (the same items to the other workers' buses).
"""
