import os

import httpx
import pytest

from bzzz.testing import netns

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip outside CI when a prerequisite is missing; under CI a missing one is a failure."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def lab():
    ok, reason = netns.available()
    require(ok, f"network namespaces unavailable: {reason}")
    with netns.Lab() as the_lab:
        yield the_lab
        # On failure, show what the agents said.
        for agent in the_lab.agents:
            print(f"--- {agent.name} log tail ---\n{agent.log_tail(30)}")


@pytest.fixture
def workdir():
    """A workspace root that an agent running as root can hand to its task user (pytest's
    own temporary directories are private to root)."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="bzzz-test-work-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def owner(hub):
    """The repository's owner (token ``t-owner``) on the test module's ``hub`` fixture: files
    the tasks and reads what became of them."""
    async with httpx.AsyncClient(base_url=hub.url,
                                 headers={"Authorization": "token t-owner"}) as client:
        yield client


# The files that take longest (seconds on 2 cores, measured), run first: with the suite in
# two processes (Makefile TEST_JOBS, pytest-xdist's --dist loadfile hands out whole files in
# collection order), a long file started last would leave one process working alone at the
# end. The rest keep their order. A file missing here only runs later; nothing depends on it.
LONGEST_FIRST = ("test_claim_race", "test_mesh_netns", "test_monitor", "test_hostile",
                 "test_help_netns", "test_image", "test_agent_presets", "test_backlog",
                 "test_schedules", "test_cli", "test_datalease", "test_logsync_processes",
                 "test_llm_tasks", "test_partition", "test_agent_presets_e2e",
                 "test_prometheus", "test_questions", "test_ci_rounds")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
