"""Notifications (seed §4.3.1): events become notification rows and unread counters."""
