"""Operator commands for a deployed (or local demo) Firewatch: ``python -m ops <command> --help``."""
