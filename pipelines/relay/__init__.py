"""The outbox relay: pending outbox rows → the events topic, at least once."""
