"""devhub against GitHub's published REST description (issue #23's first figure).

  responses_validating   the route answers (every route devhub serves, walked by
                         tests/test_devhub_conformance.py) and webhook payloads (every kind
                         the walk makes devhub send) that validate against the schema GitHub
                         publishes for that operation, of all walked. Target: all.

The walk and the validator are the conformance test's own (imported from the tests, so the
figure is what the test checks); the description comes from .ci/github-description.sh's
cache. Run as `python bench/devhub_conformance.py [--quick]` (the same either way).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_devhub_conformance import (HOOKS, REST, Description,  # noqa: E402
                                           conformance, run_walk)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not (REST.exists() and HOOKS.exists()):
        raise SystemExit("GitHub's REST description is missing: bash .ci/github-description.sh")
    start = time.monotonic()
    found, total = conformance(run_walk(), Description(REST, HOOKS))
    bad = sorted(k for k, v in found.items() if v)
    routes = sum(1 for k in found if not k.startswith("webhook "))
    print(json.dumps({"bench": "devhub_conformance", "name": "responses_validating",
                      "value": total - len(bad), "of": total, "target": "all",
                      "ok": not bad, "route_answers": routes, "webhook_kinds": total - routes,
                      "failing": bad[:20], "seconds": round(time.monotonic() - start, 2),
                      "quick": args.quick}))
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
