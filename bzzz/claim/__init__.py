"""Finding, ranking and claiming GitHub tasks: task parsing, leases, the locks, trust, the
comment intake, delivery and the service (GitHub itself is bzzz/github/)."""
