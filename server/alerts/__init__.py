"""Alerts: a batch, or the offline watch every minute -> rules (what opens an alert,
pure) -> store (insert under per-scope locks, detractors folded) -> cases (list,
read, acknowledge, assign, comment, close) and webhooks (signed delivery, retried).
"""
