"""deploy/n8n/bzzz-task.json: an importable N8N workflow whose GitHub node files a task issue
(or whose HTTP Request node calls the monitor's /enqueue). The test checks the workflow's
shape, evaluates its expressions for a webhook call, maps the GitHub node's fields to the
request N8N's GitHub node sends (POST /repos/{owner}/{repository}/issues with title, body,
labels and assignees), sends it to devhub, and a real agent runs the task."""

import json
import re
from pathlib import Path

import httpx

from bzzz.claim.task import parse_issue
from bzzz.devhub import DevHubThread
from bzzz.testing import agents as procs
from bzzz.testing.wait import wait_for

WORKFLOW = Path(__file__).resolve().parent.parent / "deploy" / "n8n" / "bzzz-task.json"
SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
CALL = {"owner": "owner", "repository": "tasks", "title": "Nightly report from N8N",
        "command": "echo n8n-was-here", "priority": "high", "needs": "shell", "jobId": "n8n-42",
        "task": "shell", "instructions": "Produce the nightly report."}


def load():
    return json.loads(WORKFLOW.read_text())


def by_type(wf, node_type):
    return [n for n in wf["nodes"] if n["type"] == node_type]


def evaluate(value, item):
    """N8N's expressions as this workflow uses them: '=' then text with {{ $json.a.b }}."""
    if isinstance(value, dict) and value.get("__rl"):
        return evaluate(value["value"], item)
    if not isinstance(value, str) or not value.startswith("="):
        return value

    def lookup(m):
        node = item
        for part in m[1].split("."):
            node = node[part]
        return str(node)
    text = re.sub(r"\{\{\s*\$json\.([A-Za-z0-9_.]+)\s*\}\}", lookup, value[1:])
    assert "{{" not in text, f"an expression this test cannot evaluate: {value}"
    return text


def test_the_workflow_is_an_importable_n8n_workflow():
    wf = load()
    assert isinstance(wf["name"], str) and isinstance(wf["nodes"], list)
    names = [n["name"] for n in wf["nodes"]]
    assert len(names) == len(set(names))
    for n in wf["nodes"]:
        assert {"id", "name", "type", "typeVersion", "position", "parameters"} <= set(n)
        assert n["type"].startswith("n8n-nodes-base.") and len(n["position"]) == 2
    for source, outputs in wf["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            for link in branch:
                assert link["node"] in names and link["type"] == "main"
    assert by_type(wf, "n8n-nodes-base.webhook")[0]["parameters"]["httpMethod"] == "POST"
    gh = by_type(wf, "n8n-nodes-base.github")[0]["parameters"]
    assert (gh["resource"], gh["operation"]) == ("issue", "create")
    http = by_type(wf, "n8n-nodes-base.httpRequest")[0]["parameters"]
    assert http["method"] == "POST" and http["url"].endswith("/enqueue")
    assert http["genericAuthType"] == "httpBearerAuth"
    # every node but the trigger is reached from it
    reached, todo = set(), ["Webhook"]
    while todo:
        name = todo.pop()
        reached.add(name)
        todo += [l["node"] for b in wf["connections"].get(name, {}).get("main", []) for l in b]
    assert reached == set(names)


def run_workflow(wf, call):
    """The webhook item through the Set node and the IF; the node the item reaches and the
    item it gets."""
    item = {"body": call, "headers": {}, "query": {}}
    setn = by_type(wf, "n8n-nodes-base.set")[0]
    item = {a["name"]: evaluate(a["value"], item)
            for a in setn["parameters"]["assignments"]["assignments"]}
    cond = by_type(wf, "n8n-nodes-base.if")[0]["parameters"]["conditions"]["conditions"][0]
    true = evaluate(cond["leftValue"], item) == cond["rightValue"]
    branches = wf["connections"]["Through the monitor?"]["main"]
    target = branches[0 if true else 1][0]["node"]
    return next(n for n in wf["nodes"] if n["name"] == target), item


def github_request(node, item):
    """What n8n-nodes-base.github sends for resource issue, operation create."""
    p = node["parameters"]
    owner, repo = evaluate(p["owner"], item), evaluate(p["repository"], item)
    body = {"title": evaluate(p["title"], item), "body": evaluate(p["body"], item),
            "labels": [evaluate(x["label"], item) for x in p["labels"]],
            "assignees": [evaluate(x["assignee"], item) for x in p["assignees"]]}
    return f"/repos/{owner}/{repo}/issues", body


def test_the_enqueue_route_sends_the_hive_fields():
    node, item = run_workflow(load(), {**CALL, "route": "enqueue"})
    assert node["type"] == "n8n-nodes-base.httpRequest"
    sent = {x["name"]: evaluate(x["value"], item)
            for x in node["parameters"]["bodyParameters"]["parameters"]}
    assert sent == {"jobId": "n8n-42", "repo": "owner/tasks", "task": "shell",
                    "instructions": "Produce the nightly report.", "priority": "high"}


def test_the_github_route_files_a_task_a_real_agent_runs(workdir):
    node, item = run_workflow(load(), {**CALL, "route": ""})
    assert node["type"] == "n8n-nodes-base.github"
    path, body = github_request(node, item)
    assert path == "/repos/owner/tasks/issues"
    with DevHubThread(seed=SEED) as hub:
        o = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        resp = o.post(path, json=body)
        assert resp.status_code == 201, resp.text
        doc = resp.json()
        task = parse_issue("owner/tasks", doc)
        assert task.priority == "high" and task.needs == {"shell"}
        assert task.command == "echo n8n-was-here" and "<!-- bzzz:job:n8n-42 -->" in doc["body"]
        agent = procs.start(Path(workdir), "n1", hub.url, "t-bot", "owner/tasks",
                            BZZZ_GITHUB__POLL_INTERVAL="0.3", BZZZ_GITHUB__WRITE_INTERVAL="0")
        try:
            def labels():
                return {x["name"] for x in o.get(f"/repos/owner/tasks/issues/{doc['number']}")
                        .json()["labels"]}
            wait_for(lambda: "bzzz:done" in labels(), 60, 0.3, "the agent runs the N8N task")
        finally:
            agent.stop()
        comments = o.get(f"/repos/owner/tasks/issues/{doc['number']}/comments").json()
        assert any("n8n-was-here" in c["body"] for c in comments)
