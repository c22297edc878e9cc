"""Finding, ranking and claiming GitHub tasks (cores without I/O, plus the GitHub adapter)."""
