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
