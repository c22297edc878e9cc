"""Schedules: task issues filed on a cron, once per slot mesh-wide (core, store, runner)."""
