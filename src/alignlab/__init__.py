"""alignlab: taxonomy + teacher -> aligned student. See README.md."""

__version__ = "0.1.0"
