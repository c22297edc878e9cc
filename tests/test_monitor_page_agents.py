"""The Visualizer's view of coding agents (#22 items 5, 6, 8), in headless Chromium against the
monitor stub as tests/test_monitor_page.py drives it: the presets on the mesh's node rows,
the usage on a task's result line, and the latest ``progress`` decision as the task page's
live transcript (hostile text shown as text)."""

from __future__ import annotations

from bzzz.testing import browser

from .test_monitor_page import HOSTILE, chromium, no_problems, open_page, stub, watched

__all__ = ["chromium", "stub", "watched"]  # the fixtures, shared


def test_node_rows_show_their_presets(stub, watched):
    mesh = stub.state()["mesh"]
    victim = mesh["agents"][0]
    victim["presets"] = ["claude-code 2.0.14 · model scripted via claude", HOSTILE]
    stub.set_mesh(mesh)
    open_page(watched, stub, "#/mesh")
    page = watched.page
    row = page.locator(f"#agents tbody tr[data-peer='{victim['peer_id']}']")
    row.locator(".chip.preset").first.wait_for()
    assert row.locator(".chip.preset").all_inner_texts() == victim["presets"]
    assert row.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    no_problems(watched)


def _event(task, agent, seq, ts, kind, **data):
    return {"ts": ts, "peer_id": agent["peer_id"], "node_id": agent["node_id"], "seq": seq,
            "type": kind, "data": {"type": kind, "repo": task["repo"], "issue": task["issue"],
                                   **data}}


def test_task_page_shows_the_transcript_live_and_the_usage(stub, watched):
    state = stub.state()
    tasks, agent = state["tasks"], state["mesh"]["agents"][0]
    task = next(t for t in tasks if t["state"] == "done")
    t0 = task["updated"] - 40.0
    task["extra_timeline"] = [
        _event(task, agent, 500, t0 + 30.0, "progress", elapsed=10.0, final=False,
               lines=["🔧 Read README.md", "🔧 Bash pytest"]),
        _event(task, agent, 501, t0 + 35.0, "progress", elapsed=15.0, final=True,
               lines=["🔧 Read README.md", "🔧 Edit README.md", HOSTILE]),
        _event(task, agent, 502, t0 + 38.5, "result", status="succeeded",
               usage={"agent": "claude-code", "model": "scripted", "turns": 7,
                      "tokens_in": 12345, "tokens_out": 2345, "cost": 0.04})]
    stub.set_tasks(tasks)
    open_page(watched, stub, f"#/task/{task['repo']}/{task['issue']}")
    page = watched.page
    page.wait_for_selector("#transcript pre")
    # the latest progress decision, as text
    assert page.locator("#transcript pre").inner_text().splitlines() == [
        "🔧 Read README.md", "🔧 Edit README.md", HOSTILE]
    assert page.locator("#transcript").get_attribute("data-final") == "1"
    assert "Transcript (final)" in page.locator("#transcript h3").inner_text()
    usage = page.locator(".tl-event[data-type='result'] .usage")
    assert usage.inner_text() == (" · claude-code (scripted) · 7 turns · 12,345 tokens in, "
                                  "2,345 out · about $0.04")
    assert page.locator(".tl-event[data-type='progress']").count() == 2
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__pwned") is None
    browser.screenshot(page, "task-transcript")
    no_problems(watched)
