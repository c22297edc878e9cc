"""The Mesh Visualizer on a real mesh: `bzzz run` agents, `bzzz monitor` and devhub, the page
in headless Chromium (bzzz/testing/browser.py). Screenshots go to the artefacts directory."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.testing import browser
from bzzz.testing.agents import start, start_monitor, stop_all
from bzzz.testing.wait import wait_for

from .conftest import require
from .test_monitor import FAST, SEED, _up, agent_doc

ok, why = browser.available()
READY = "() => document.documentElement.dataset.ready === '1'"


@pytest.fixture(scope="module")
def chromium():
    require(ok, why)
    with browser.chromium() as b:
        yield b


def test_the_page_follows_a_real_mesh(tmp_path, workdir, chromium):
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        agents = [start(tmp_path, "a1", hub.url, "t-bot", "owner/tasks",
                        BZZZ_WORKSPACE_DIR=os.path.join(workdir, "a1"), **FAST)]
        agents.append(start(tmp_path, "a2", hub.url, "t-bot", "owner/tasks",
                            bootstrap=agents[0].addr,
                            BZZZ_WORKSPACE_DIR=os.path.join(workdir, "a2"), **FAST))
        env = dict(BZZZ_ANNOUNCE_INTERVAL="1", BZZZ_MONITOR__POLL_INTERVAL="0.5",
                   BZZZ_MONITOR__AGENT_EXPIRY="4")
        mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks",
                            bootstrap=agents[0].addr, **env)
        w = browser.watched_page(chromium)
        try:
            wait_for(lambda: _up(mon), 30, what="the monitor answers")
            page = w.page
            page.goto(f"{mon.url}/")
            page.wait_for_function(READY)
            page.wait_for_selector("#live[data-status='live']")
            page.evaluate("window.__sameDocument = true")
            peers = {}
            for name in ("a1", "a2"):
                doc = wait_for(lambda name=name: (agent_doc(mon, name) or {}).get("state") == "up"
                               and agent_doc(mon, name), 30, what=f"{name} up")
                peers[name] = doc["peer_id"]
                page.wait_for_selector(f"#agents tbody tr[data-peer='{doc['peer_id']}']",
                                       timeout=20_000)
            # a task: waiting (or already claimed) -> done, without a reload
            page.goto(f"{mon.url}/#/tasks")
            page.wait_for_function(READY)
            page.evaluate("window.__sameDocument = true")
            n = owner.post("/repos/owner/tasks/issues", json={
                "title": "a page test", "body": "```bzzz\necho shown\n```",
                "labels": ["bzzz"]}).json()["number"]
            page.wait_for_selector(f"#tasks tbody tr[data-issue='{n}']", timeout=30_000)
            page.wait_for_selector(f"#tasks tbody tr[data-issue='{n}'][data-state='done']",
                                   timeout=60_000)
            assert page.evaluate("window.__sameDocument === true")
            browser.screenshot(page, "live-task-done")
            # the form files an issue on devhub
            page.goto(f"{mon.url}/#/new")
            form = page.locator("#new-task")
            form.locator("[name=repo]").fill("owner/tasks")
            form.locator("[name=title]").fill("Filed from the page")
            form.locator("[name=instructions]").fill("Please look at the README.")
            form.locator("[name=token]").fill(mon.token)
            form.locator("button[type=submit]").click()
            page.wait_for_selector("#new-result[data-kind='ok'] a", timeout=20_000)
            titles = [i["title"] for i in owner.get("/repos/owner/tasks/issues",
                                                    params={"state": "all"}).json()]
            assert "Filed from the page" in titles
            # a killed agent goes grey within its expiry
            page.goto(f"{mon.url}/#/mesh")
            page.wait_for_function(READY)
            os.kill(agents[1].proc.pid, signal.SIGKILL)
            page.wait_for_selector(f"#agents tbody tr.gone[data-peer='{peers['a2']}']",
                                   timeout=20_000)
            browser.screenshot(page, "live-agent-gone")
            assert w.problems() == []  # nothing left loopback, no console error so far
            # a tampered replica shows as failing (after the monitor restarts on it; the
            # old page's stream then fails, which is expected)
            key = agent_doc(mon, "a1")["log"]["key"]
            mon.stop()
            path = mon.data_dir / "replicas" / key / "log"
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
            mon = start_monitor(tmp_path, hub.url, "t-mon", "owner/tasks",
                                bootstrap=agents[0].addr, **env)
            wait_for(lambda: _up(mon), 30, what="the monitor answers again")
            page.goto(f"{mon.url}/#/mesh")
            page.wait_for_function(READY)
            page.wait_for_selector(
                f"#agents tbody tr[data-peer='{peers['a1']}'] td.verify [data-log='failing']",
                timeout=30_000)
            browser.screenshot(page, "live-replica-failing")
        finally:
            try:
                browser.screenshot(w.page, "live-final")
            finally:
                w.close()
                stop_all([mon, *agents])
