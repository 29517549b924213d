"""Alerts that are never lost: the message schema (schema.py), the outbox (outbox.py), the sinks
(publisher.py: ZeroMQ; mqtt.py), the catch-up endpoint (query.py), CURVE (security.py) and
the subscriber library (subscriber.py)."""
