"""GitHub's simple user document and node ids: a leaf module (render.py and apps.py share it
without importing each other's dependencies)."""

from __future__ import annotations

import base64
from typing import Any


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"{kind}:{ident}".encode()).decode().rstrip("=")


def user_doc(base: str, login: str, uid: int, site_admin: bool = False) -> dict[str, Any]:
    """A user as GitHub's ``simple-user`` (every URL pointing at devhub's ``base``)."""
    base = base.rstrip("/")
    url = f"{base}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": node_id("User", uid),
        "avatar_url": "", "gravatar_id": "", "url": url, "html_url": f"{base}/{login}",
        "followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User", "site_admin": site_admin,
    }
