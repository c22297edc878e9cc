"""Running tasks: the Guardian (policy), executors and results."""
