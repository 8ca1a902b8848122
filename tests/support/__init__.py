"""Test doubles and fixtures' building blocks shared by tests/ (and, for Redis, by bench/)."""
