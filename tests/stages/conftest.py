"""The smoke reach workspace fixtures (`collected_template`, `reach_ws`) live in tests/conftest.py."""
