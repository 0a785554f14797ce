"""Notifications (docs/architecture.md#the-shape): events become notification rows and unread counters."""
