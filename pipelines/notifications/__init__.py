"""Notifications: events become notification rows and unread counters.

See docs/architecture.md#the-shape.
"""
