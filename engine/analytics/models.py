"""What analytics adds to the store's schema (migration 0002_analytics), on the shared Base."""

from __future__ import annotations

from sqlalchemy import Index

from engine.store.models import Alert

# Snapshot refreshes read alerts changed since the last one (engine/analytics/snapshot.py).
ALERTS_UPDATED_AT = Index("ix_alerts_updated_at", Alert.updated_at)
