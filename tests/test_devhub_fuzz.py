"""Hostile input to devhub: any JSON body at any write endpoint is a 4xx, never a 500."""

import json

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.devhub.app import DevHubApp
from bzzz.devhub.state import Hub

from .test_devhub import SEED

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["title", "body", "labels", "assignees", "assignee", "state", "name",
                         "color", "ref", "sha", "force", "tree", "message", "parents", "config",
                         "events", "head", "base", "content", "encoding", "state_reason", "login",
                         "role", "repo", "x"]), c,
        max_size=6),
    max_leaves=20)

ENDPOINTS = [
    ("POST", "/repos/alice/widgets/issues"),
    ("PATCH", "/repos/alice/widgets/issues/1"),
    ("POST", "/repos/alice/widgets/issues/1/assignees"),
    ("DELETE", "/repos/alice/widgets/issues/1/assignees"),
    ("POST", "/repos/alice/widgets/issues/1/labels"),
    ("PUT", "/repos/alice/widgets/issues/1/labels"),
    ("POST", "/repos/alice/widgets/issues/1/comments"),
    ("PATCH", "/repos/alice/widgets/issues/comments/{comment}"),
    ("POST", "/repos/alice/widgets/issues/comments/{comment}/reactions"),
    ("POST", "/repos/alice/widgets/issues/1/reactions"),
    ("DELETE", "/repos/alice/widgets/issues/comments/{comment}/reactions/1"),
    ("DELETE", "/repos/alice/widgets/collaborators/carol"),
    ("POST", "/_devhub/roles"),
    ("POST", "/repos/alice/widgets/labels"),
    ("POST", "/repos/alice/widgets/git/refs"),
    ("PATCH", "/repos/alice/widgets/git/refs/heads/main"),
    ("POST", "/repos/alice/widgets/git/blobs"),
    ("POST", "/repos/alice/widgets/git/trees"),
    ("POST", "/repos/alice/widgets/git/commits"),
    ("POST", "/repos/alice/widgets/pulls"),
    ("POST", "/repos/alice/widgets/hooks"),
]


def make_app() -> DevHubApp:
    hub = Hub()
    hub.seed(SEED, 1_700_000_000)
    app = DevHubApp(hub)
    issue = hub.create_issue(hub.repos["alice/widgets"], "alice", 1_700_000_000, "first")
    comment = hub.create_comment(hub.repos["alice/widgets"], issue.number, "bob",
                                 1_700_000_000, "a comment to edit and react to")
    return app, comment.id


APP, COMMENT = make_app()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ENDPOINTS), json_values | st.binary(max_size=40))
def test_any_body_gets_a_clear_4xx(endpoint, body):
    method, path = endpoint
    path = path.format(comment=COMMENT)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def call():
        return await APP.handle(method, path, "", {"authorization": "token t-alice",
                                                   "host": "devhub.test"}, raw)

    status, payload, _ = trio.run(call)
    assert status < 500, (method, path, raw, payload)
    if status >= 400:
        assert isinstance(payload, dict) and payload.get("message")
