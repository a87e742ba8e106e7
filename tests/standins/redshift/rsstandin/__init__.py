"""The Redshift SQL stand-in: a PostgreSQL-protocol server with TLS in front of a real
PostgreSQL 15 that behaves as Amazon Redshift where rsproxy depends on it (see
tests/standins/README.md and session.py)."""
