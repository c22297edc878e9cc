"""A repository collaborator's roles, as GitHub names them, and which of them may write."""

# Most access first. The permission API's legacy ``permission`` maps maintain to write and
# triage to read (GitHub's REST reference).
ROLES = ("admin", "maintain", "write", "triage", "read")
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
TRIAGE_ROLES = WRITE_ROLES | {"triage"}
SEED_ROLE_KEYS = {"admin": "admin", "maintain": "maintain", "push": "write", "write": "write",
                  "triage": "triage", "read": "read"}
