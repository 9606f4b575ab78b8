"""Notifications and escalation: channels, delivery, templates, noise, on-call (DESIGN.md §6)."""
