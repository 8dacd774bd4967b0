"""Helpers shared by the test modules: one per concern (killing a real process, reading weights, the CLI)."""
