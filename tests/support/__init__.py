"""Helpers shared by the test suite: databases and servers for the fixtures in tests/conftest.py."""
