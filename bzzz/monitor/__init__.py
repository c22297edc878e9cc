"""The monitoring node (``bzzz monitor``): docs/monitor-api.md."""
