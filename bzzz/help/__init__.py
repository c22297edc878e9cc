"""Collaborative help: hop-limited help requests and task handoff (issue: help)."""
