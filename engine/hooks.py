"""What the worker runs in each batch's transaction after storing alerts.

Each feature that reacts to alert changes registers here (notifications enqueue deliveries).
"""

from __future__ import annotations

from engine.worker import Hook


def worker_hooks() -> list[Hook]:
    from engine.notify.enqueue import NotifyHook

    return [NotifyHook()]
