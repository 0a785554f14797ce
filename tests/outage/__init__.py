"""Outage tests: private PostgreSQL and Redis servers that a test stops and restarts."""
