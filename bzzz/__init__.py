"""Bzzz: a decentralized task execution mesh."""

__version__ = "0.1.0"
