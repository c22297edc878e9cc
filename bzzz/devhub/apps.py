"""GitHub Apps on devhub: registration, installations, JWTs and installation tokens.

GitHub's semantics (docs.github.com, "Authenticating as a GitHub App"), so the agent's App
credentials are tested end to end:

- an app has an id, a slug, an owner, permissions and one or more public keys (the admin API
  registers it and adds or removes keys: a removed key makes new JWTs fail);
- the app authenticates with a JWT (``Authorization: Bearer``): RS256, signed by one of its
  keys, ``iss`` its id, ``iat`` not in the future, ``exp`` in the future and at most 10
  minutes ahead; anything else is a 401 with GitHub's message;
- with it: ``GET /app``, ``GET /app/installations``, ``GET /app/installations/{id}``,
  ``POST /app/installations/{id}/access_tokens`` (201: ``token`` ``ghs_…``, ``expires_at``
  an hour ahead unless the admin API set a shorter lifetime, ``permissions``,
  ``repository_selection``), narrowed on request to some repositories or permissions;
- an installation token acts as ``<slug>[bot]`` on the installation's repositories, with its
  permissions per route family (issues, pull requests, contents, metadata, ...): a missing
  one is GitHub's 403 "Resource not accessible by integration", as ``GET /user`` is; after
  ``expires_at`` (or ``DELETE /installation/token``) it is 401 "Bad credentials".

A core: state in, state out, time passed in. The HTTP pipeline (app.py) calls
:meth:`Apps.api` for ``/app…``, :meth:`Apps.resolve` for every token and
:meth:`Apps.authorize` once a route matched; :meth:`Apps.admin` serves ``/_devhub/apps…``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import HubError
from .roles import ROLES
from .userdoc import user_doc

if TYPE_CHECKING:
    from .state import Hub, Repo

DOCS = "https://docs.github.com/rest"
MAX_JWT_AHEAD = 600  # seconds: GitHub refuses exp further ahead
DEFAULT_TOKEN_LIFETIME = 3600
LEVELS = {"read": 1, "write": 2, "admin": 3}
# what an app asks for when the admin API names nothing: what Bzzz needs (see the README)
DEFAULT_PERMISSIONS = {"issues": "write", "pull_requests": "write", "contents": "write",
                       "metadata": "read"}

BAD_JWT = "A JSON web token could not be decoded"
EXP_FUTURE = "'Expiration time' claim ('exp') is too far in the future"
EXP_PAST = ("'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires")
IAT_BAD = ("'Issued at' claim ('iat') must be an Integer representing the time that the "
           "assertion was issued")
NOT_ACCESSIBLE = "Resource not accessible by integration"

Response = tuple[int, Any, dict[str, str]]


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: str
    permissions: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)  # key id -> public key (PEM)
    events: list[str] = field(default_factory=list)
    created_at: int = 0
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME

    @property
    def bot(self) -> str:
        return f"{self.slug}[bot]"


@dataclass
class Installation:
    id: int
    app_id: int
    account: str
    permissions: dict[str, str]
    repositories: list[str] | None = None  # full names; None: all of the account's
    created_at: int = 0


@dataclass
class InstallationToken:
    token: str
    installation_id: int
    expires_at: int
    permissions: dict[str, str]
    repositories: list[str] | None  # lower-case full names; None: the installation's


def _err(status: int, message: str) -> Response:
    return status, {"message": message, "documentation_url": DOCS}, {}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _permissions(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and v in LEVELS for k, v in value.items()):
        raise HubError(422, f"{what} must map permission names to read, write or admin")
    return dict(value)


def _within(asked: dict[str, str], granted: dict[str, str]) -> bool:
    return all(LEVELS[v] <= LEVELS.get(granted.get(k, ""), 0) for k, v in asked.items())


# Route families and the permission each needs (GitHub's "Permissions required for GitHub
# Apps"): issue routes also accept pull_requests (issue comments on a PR), the metadata
# permission is implied (read), administration guards protection and collaborator removal.
def required_permission(method: str, template: str) -> tuple[str, ...] | None:
    """The permissions (any of) a route needs; () when any installation token may call it;
    None when no installation token may (user-only routes such as ``/user``)."""
    if template in ("/user",):
        return None
    prefix = "/repos/{owner}/{repo}"
    if not template.startswith(prefix):
        return ()
    rest = template[len(prefix):]
    if "/protection" in rest:
        return ("administration",)
    if rest.startswith("/collaborators") and method == "DELETE":
        return ("administration",)
    if rest.startswith(("/issues", "/labels", "/assignees")):
        return ("issues", "pull_requests")
    if rest.startswith("/pulls"):
        return ("pull_requests",)
    if rest.startswith(("/git/", "/branches")):
        return ("contents",)
    if rest.startswith("/hooks"):
        return ("repository_hooks",)
    if rest.startswith("/statuses/") or re.fullmatch(r"/commits/\{ref\}/status(es)?", rest):
        return ("statuses",)
    if rest.startswith(("/check-runs", "/check-suites")) or re.fullmatch(
            r"/commits/\{ref\}/check-(runs|suites)", rest):
        return ("checks",)
    return ("metadata",)


class Apps:
    """Every app, installation and installation token of one devhub."""

    def __init__(self, hub: "Hub") -> None:
        self.hub = hub
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, InstallationToken] = {}

    # ------------------------------------------------------------ registration (admin)

    @staticmethod
    def _public_key(pem: Any) -> str:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import (load_pem_private_key,
                                                                  load_pem_public_key,
                                                                  Encoding, PublicFormat)
        if not isinstance(pem, str):
            raise HubError(422, "public_key must be a PEM string")
        data = pem.encode()
        try:
            key = load_pem_public_key(data)
        except ValueError:
            try:  # a private key is accepted too; only its public half is kept
                key = load_pem_private_key(data, password=None).public_key()
            except (ValueError, TypeError):
                raise HubError(422, "public_key is not a PEM key") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise HubError(422, "public_key must be an RSA key (RS256)")
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def register(self, doc: dict[str, Any], now: int) -> App:
        slug = doc.get("slug")
        if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,33}", slug):
            raise HubError(422, "slug must be lower-case letters, digits and dashes")
        if any(a.slug == slug for a in self.apps.values()):
            raise HubError(422, f"an app with slug {slug!r} exists")
        owner = doc.get("owner") or next(iter(self.hub.users), "devhub")
        if not isinstance(owner, str):
            raise HubError(422, "owner must be a login")
        perms = _permissions(doc.get("permissions", DEFAULT_PERMISSIONS), "permissions")
        perms.setdefault("metadata", "read")
        app = App(self.hub.new_id(), slug, str(doc.get("name") or slug), owner, perms,
                  events=[e for e in doc.get("events", []) if isinstance(e, str)],
                  created_at=now)
        self._set_lifetime(app, doc.get("token_lifetime", DEFAULT_TOKEN_LIFETIME))
        if "public_key" in doc:
            self.add_key(app, doc["public_key"])
        self.hub.add_user(owner) if owner not in self.hub.users else None
        self.hub.add_user(app.bot)
        self.apps[app.id] = app
        return app

    @staticmethod
    def _set_lifetime(app: App, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 1 <= value <= 3600:
            raise HubError(422, "token_lifetime must be 1 to 3600 seconds")
        app.token_lifetime = int(value)

    def app(self, ident: Any) -> App:
        try:
            app = self.apps.get(int(ident))
        except (TypeError, ValueError):
            app = None
        if app is None:
            raise HubError(404, "Not Found")
        return app

    def add_key(self, app: App, pem: Any) -> str:
        public = self._public_key(pem)
        key_id = str(self.hub.new_id())
        app.keys[key_id] = public
        return key_id

    def remove_key(self, app: App, key_id: str) -> None:
        if app.keys.pop(key_id, None) is None:
            raise HubError(404, "Not Found")

    def install(self, app: App, doc: dict[str, Any], now: int) -> Installation:
        account = doc.get("account")
        if not isinstance(account, str) or not account:
            raise HubError(422, "account must be a login")
        perms = _permissions(doc.get("permissions", app.permissions), "permissions")
        if not _within(perms, app.permissions):
            raise HubError(422, "an installation cannot have permissions the app lacks")
        repos = doc.get("repositories")
        if repos is not None:
            if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
                raise HubError(422, "repositories must be a list of full names")
            for name in repos:
                repo = self.hub.repos.get(name.lower())
                if repo is None or repo.owner.lower() != account.lower():
                    raise HubError(422, f"{name} is not a repository of {account}")
            repos = [self.hub.repos[r.lower()].full_name for r in repos]
        if any(i.app_id == app.id and i.account.lower() == account.lower()
               for i in self.installations.values()):
            raise HubError(422, f"{app.slug} is already installed on {account}")
        self.hub.add_user(account) if account not in self.hub.users else None
        inst = Installation(self.hub.new_id(), app.id, account, perms, repos, now)
        self.installations[inst.id] = inst
        self._grant(inst)
        return inst

    def _repos_of(self, inst: Installation) -> list["Repo"]:
        if inst.repositories is None:
            return [r for r in self.hub.repos.values() if r.owner.lower() == inst.account.lower()]
        return [self.hub.repos[n.lower()] for n in inst.repositories if n.lower() in self.hub.repos]

    def _grant(self, inst: Installation) -> None:
        """The bot's role on each repository (the coarse rule devhub's handlers check);
        :meth:`authorize` applies the fine-grained permissions on top."""
        bot = self.apps[inst.app_id].bot
        writes = any(inst.permissions.get(p) in ("write", "admin")
                     for p in ("contents", "issues", "pull_requests"))
        role = "admin" if inst.permissions.get("administration") == "admin" else (
            "write" if writes else "read")
        assert role in ROLES
        for repo in self._repos_of(inst):
            if repo.roles.get(bot) != role:
                self.hub.set_role(repo, bot, role)

    def uninstall(self, inst: Installation) -> None:
        bot = self.apps[inst.app_id].bot
        for repo in self._repos_of(inst):
            repo.roles.pop(bot, None)
        self.tokens = {t: x for t, x in self.tokens.items() if x.installation_id != inst.id}
        del self.installations[inst.id]

    def installation(self, ident: Any, app: App | None = None) -> Installation:
        try:
            inst = self.installations.get(int(ident))
        except (TypeError, ValueError):
            inst = None
        if inst is None or (app is not None and inst.app_id != app.id):
            raise HubError(404, "Not Found")
        return inst

    # ------------------------------------------------------------ the JWT

    def verify_jwt(self, token: str, now: float) -> App:
        """The app a JWT authenticates, or HubError(401) with GitHub's message."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        parts = token.split(".")
        if len(parts) != 3:
            raise HubError(401, BAD_JWT)
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise HubError(401, BAD_JWT) from None
        if not isinstance(header, dict) or header.get("alg") != "RS256" or \
                not isinstance(claims, dict):
            raise HubError(401, BAD_JWT)
        iss = claims.get("iss")
        app = None
        if isinstance(iss, int) or (isinstance(iss, str) and iss.isdigit()):
            app = self.apps.get(int(iss))
        if app is None:
            raise HubError(401, BAD_JWT)
        signed = f"{parts[0]}.{parts[1]}".encode()
        for pem in app.keys.values():
            key = load_pem_public_key(pem.encode())
            assert isinstance(key, RSAPublicKey), "add_key keeps RSA keys only"
            try:
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                break
            except InvalidSignature:
                continue
        else:
            raise HubError(401, BAD_JWT)
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= now:
            raise HubError(401, EXP_PAST)
        if exp > now + MAX_JWT_AHEAD:
            raise HubError(401, EXP_FUTURE)
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + 1:
            raise HubError(401, IAT_BAD)
        return app

    # ------------------------------------------------------------ the /app API (JWT)

    def _account_doc(self, base: str, login: str) -> dict[str, Any]:
        """The account as GitHub's simple user document."""
        user = self.hub.users.get(login)
        return user_doc(base, login, user.id if user else 0, bool(user and user.site_admin))

    def app_doc(self, base: str, app: App) -> dict[str, Any]:
        return {"id": app.id, "slug": app.slug, "node_id": f"A_{app.id}",
                "client_id": f"Iv1.{app.id:016x}", "name": app.name,
                "owner": self._account_doc(base, app.owner), "description": "",
                "external_url": base, "html_url": f"{base}/apps/{app.slug}",
                "created_at": _iso(app.created_at), "updated_at": _iso(app.created_at),
                "permissions": dict(app.permissions), "events": list(app.events),
                "installations_count": sum(1 for i in self.installations.values()
                                           if i.app_id == app.id)}

    def installation_doc(self, base: str, inst: Installation) -> dict[str, Any]:
        app = self.apps[inst.app_id]
        return {"id": inst.id, "account": self._account_doc(base, inst.account),
                "app_id": app.id, "app_slug": app.slug, "client_id": f"Iv1.{app.id:016x}",
                "target_id": self.hub.users[inst.account].id if inst.account in self.hub.users
                else 0, "target_type": "User", "permissions": dict(inst.permissions),
                "events": list(app.events),
                "repository_selection": "all" if inst.repositories is None else "selected",
                "access_tokens_url": f"{base}/app/installations/{inst.id}/access_tokens",
                "repositories_url": f"{base}/installation/repositories",
                "html_url": f"{base}/settings/installations/{inst.id}",
                "created_at": _iso(inst.created_at), "updated_at": _iso(inst.created_at),
                "single_file_name": None, "suspended_at": None, "suspended_by": None}

    def api(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
            body: bytes, now: float, base: str) -> Response:
        """``/app`` and ``/app/…``: authenticated by the app's JWT."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _err(401, BAD_JWT) if value else _err(
                401, "You must authenticate with a JSON web token to access this endpoint.")
        try:
            app = self.verify_jwt(value.strip(), now)
            if method == "GET" and path == "/app":
                return 200, self.app_doc(base, app), {}
            if method == "GET" and path == "/app/installations":
                mine = sorted((i for i in self.installations.values() if i.app_id == app.id),
                              key=lambda i: i.id)
                per = _int_arg(query, "per_page", 30, 1, 100)
                page = _int_arg(query, "page", 1, 1, 10**6)
                chunk = mine[(page - 1) * per: page * per]
                return 200, [self.installation_doc(base, i) for i in chunk], {}
            m = re.fullmatch(r"/app/installations/([^/]+)(/access_tokens)?", path)
            if m and method == "GET" and not m.group(2):
                return 200, self.installation_doc(base, self.installation(m.group(1), app)), {}
            if m and method == "DELETE" and not m.group(2):
                self.uninstall(self.installation(m.group(1), app))
                return 204, None, {}
            if m and method == "POST" and m.group(2):
                inst = self.installation(m.group(1), app)
                doc = json.loads(body) if body else {}
                if not isinstance(doc, dict):
                    raise HubError(400, "Problems parsing JSON")
                return 201, self.issue_token(base, inst, doc, now), {}
        except ValueError:
            return _err(400, "Problems parsing JSON")
        except HubError as err:
            return _err(err.status, err.message)
        return _err(404, "Not Found")

    def issue_token(self, base: str, inst: Installation, doc: dict[str, Any],
                    now: float) -> dict[str, Any]:
        app = self.apps[inst.app_id]
        self._grant(inst)  # "all repositories" includes ones created since the install
        perms = dict(inst.permissions)
        if "permissions" in doc:
            asked = _permissions(doc["permissions"], "permissions")
            if not _within(asked, inst.permissions):
                raise HubError(422, "The permissions requested are not granted to this "
                                    "installation.")
            perms = {**asked, "metadata": "read"}
        available = {r.full_name.lower(): r for r in self._repos_of(inst)}
        names: list[str] | None = None
        if "repositories" in doc or "repository_ids" in doc:
            wanted = doc.get("repositories") or []
            ids = doc.get("repository_ids") or []
            if not isinstance(wanted, list) or not isinstance(ids, list):
                raise HubError(422, "repositories must be a list")
            by_id = {r.id: r for r in available.values()}
            names = []
            for name in wanted:  # a bare name is in the installation's account
                full = (name if "/" in str(name) else f"{inst.account}/{name}").lower()
                if full not in available:
                    raise HubError(422, "There is at least one repository that does not exist "
                                        "or is not accessible to the parent installation.")
                names.append(full)
            for rid in ids:
                if rid not in by_id:
                    raise HubError(422, "There is at least one repository that does not exist "
                                        "or is not accessible to the parent installation.")
                names.append(by_id[rid].full_name.lower())
        token = "ghs_" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
                                                "tuvwxyz0123456789") for _ in range(36))
        expires = int(now) + app.token_lifetime
        self.tokens[token] = InstallationToken(token, inst.id, expires, perms, names)
        self._expire(now)
        out: dict[str, Any] = {
            "token": token, "expires_at": _iso(expires), "permissions": perms,
            "repository_selection": "selected" if (names is not None or inst.repositories
                                                   is not None) else "all"}
        if names is not None:
            out["repositories"] = [{"id": available[n].id, "name": available[n].name,
                                    "full_name": available[n].full_name} for n in names]
        return out

    def _expire(self, now: float) -> None:
        """Forget tokens expired for a day (GitHub keeps answering 401 for them, as devhub
        does for any unknown token)."""
        if len(self.tokens) > 1000:
            self.tokens = {t: x for t, x in self.tokens.items() if x.expires_at > now - 86400}

    # ------------------------------------------------------------ installation tokens

    def resolve(self, token: str | None, now: float) -> tuple[str | None, InstallationToken | None]:
        """(login, installation token) for a request's token: a user's token gives its login;
        a live installation token its bot; an expired or revoked one (None, None)."""
        if not token:
            return None, None
        inst_token = self.tokens.get(token)
        if inst_token is None:
            return self.hub.login_for(token), None
        inst = self.installations.get(inst_token.installation_id)
        if inst is None or now >= inst_token.expires_at:
            return None, None
        return self.apps[inst.app_id].bot, inst_token

    def revoke(self, token: str) -> bool:
        """An installation token or a user's token stops working."""
        if self.tokens.pop(token, None) is not None:
            return True
        return self.hub.tokens.pop(token, None) is not None

    def _covers(self, tok: InstallationToken, full_name: str) -> bool:
        inst = self.installations[tok.installation_id]
        names = tok.repositories
        if names is None:
            names = [r.full_name.lower() for r in self._repos_of(inst)]
        return full_name.lower() in names

    def authorize(self, tok: InstallationToken, method: str, template: str,
                  params: dict[str, str]) -> Response | None:
        """None when the installation token may make this request; else GitHub's answer."""
        needed = required_permission(method, template)
        if needed is None:
            return _err(403, NOT_ACCESSIBLE)
        if not needed:
            return None
        if "owner" in params and "repo" in params:
            full = f"{params['owner']}/{params['repo']}"
            if not self._covers(tok, full):
                repo = self.hub.repos.get(full.lower())
                if method == "GET" and repo is not None and not repo.private:
                    return None  # public repositories are readable by any token
                return _err(404, "Not Found") if method == "GET" else _err(403, NOT_ACCESSIBLE)
        level = 1 if method in ("GET", "HEAD") else 2
        perms = {**tok.permissions, "metadata": tok.permissions.get("metadata", "read")}
        if not any(LEVELS.get(perms.get(p, ""), 0) >= level for p in needed):
            return _err(403, NOT_ACCESSIBLE)
        return None

    def may_use_git(self, tok: InstallationToken, full_name: str, pushing: bool) -> bool:
        """Smart HTTP: fetch needs contents read, push contents write, on a covered repo."""
        if not self._covers(tok, full_name):
            repo = self.hub.repos.get(full_name.lower())
            return not pushing and repo is not None and not repo.private
        return LEVELS.get(tok.permissions.get("contents", ""), 0) >= (2 if pushing else 1)

    # ------------------------------------------------------------ the admin API

    def admin(self, method: str, path: str, doc: Any, now: float) -> Response | None:
        """``/_devhub/apps…``, ``/_devhub/installations…`` and ``/_devhub/tokens/revoke``;
        None for other paths.

        - ``POST /_devhub/apps`` ``{"slug", "name"?, "owner"?, "public_key", "permissions"?,
          "events"?, "token_lifetime"?}`` → 201 ``{"id", "slug", "bot", "key_id"}``
        - ``PATCH /_devhub/apps/{id}`` ``{"token_lifetime"}`` (seconds, 1-3600)
        - ``POST /_devhub/apps/{id}/keys`` ``{"public_key"}`` → 201 ``{"key_id"}``;
          ``DELETE /_devhub/apps/{id}/keys/{key_id}`` revokes it
        - ``POST /_devhub/apps/{id}/installations`` ``{"account", "permissions"?,
          "repositories"?}`` (absent: all of the account's) → 201 ``{"id"}``
        - ``DELETE /_devhub/installations/{id}/tokens``: its tokens stop working
        - ``POST /_devhub/tokens/revoke`` ``{"token"}``: a user's or installation token
        """
        if not path.startswith(("/_devhub/apps", "/_devhub/installations", "/_devhub/tokens")):
            return None
        if method in ("POST", "PATCH") and not isinstance(doc, dict):
            raise HubError(422, "the body must be a JSON object")
        if path == "/_devhub/apps" and method == "POST":
            app = self.register(doc, int(now))
            key_id = next(iter(app.keys), None)
            return 201, {"id": app.id, "slug": app.slug, "bot": app.bot, "key_id": key_id}, {}
        if path == "/_devhub/apps" and method == "GET":
            return 200, [{"id": a.id, "slug": a.slug, "keys": list(a.keys),
                          "token_lifetime": a.token_lifetime} for a in self.apps.values()], {}
        if path == "/_devhub/tokens/revoke" and method == "POST":
            token = doc.get("token")
            if not isinstance(token, str) or not self.revoke(token):
                raise HubError(404, "Not Found")
            return 204, None, {}
        m = re.fullmatch(r"/_devhub/installations/([^/]+)/tokens", path)
        if m and method == "DELETE":
            inst = self.installation(m.group(1))
            self.tokens = {t: x for t, x in self.tokens.items() if x.installation_id != inst.id}
            return 204, None, {}
        m = re.fullmatch(r"/_devhub/apps/([^/]+)(/keys|/installations)?(?:/([^/]+))?", path)
        if not m:
            return 404, {"message": "Not Found"}, {}
        app = self.app(m.group(1))
        sub, item = m.group(2), m.group(3)
        if sub is None and item is None and method == "PATCH":
            if "token_lifetime" in doc:
                self._set_lifetime(app, doc["token_lifetime"])
            return 200, {"id": app.id, "token_lifetime": app.token_lifetime}, {}
        if sub is None and item is None and method == "GET":
            return 200, {"id": app.id, "slug": app.slug, "keys": list(app.keys),
                         "token_lifetime": app.token_lifetime}, {}
        if sub == "/keys" and item is None and method == "POST":
            return 201, {"key_id": self.add_key(app, doc.get("public_key"))}, {}
        if sub == "/keys" and item is not None and method == "DELETE":
            self.remove_key(app, item)
            return 204, None, {}
        if sub == "/installations" and item is None and method == "POST":
            inst = self.install(app, doc, int(now))
            return 201, {"id": inst.id, "account": inst.account}, {}
        return 404, {"message": "Not Found"}, {}

    # ------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {"apps": [asdict(a) for a in self.apps.values()],
                "installations": [asdict(i) for i in self.installations.values()],
                "tokens": [asdict(t) for t in self.tokens.values()]}

    def load(self, doc: dict[str, Any] | None) -> None:
        doc = doc or {}
        self.apps = {a["id"]: App(**a) for a in doc.get("apps", [])}
        self.installations = {i["id"]: Installation(**i) for i in doc.get("installations", [])}
        self.tokens = {t["token"]: InstallationToken(**t) for t in doc.get("tokens", [])}


def _int_arg(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        return min(high, max(low, int(values[-1])))
    except ValueError:
        return default
