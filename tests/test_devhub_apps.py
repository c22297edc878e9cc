"""devhub's GitHub App flow against GitHub's semantics: JWTs, installations, installation
tokens that expire, act as <slug>[bot] with their permissions, and keys that can be revoked.

devhub runs in process (bzzz/testing/inprocess.py), but for git over smart HTTP."""

import base64
import calendar
import json
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bzzz.github.credentials import make_jwt
from bzzz.devhub import DevHubThread
from bzzz.devhub.server import load_state, save_state
from bzzz.testing.inprocess import InProcessDevHub

SEED = {"users": [{"login": "acme", "token": "t-acme"}, {"login": "eve", "token": "t-eve"}],
        "repos": [{"full_name": "acme/widgets"}, {"full_name": "acme/tools"},
                  {"full_name": "acme/secret", "private": True},
                  {"full_name": "eve/other"}]}


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key, claims: dict, alg: str = "RS256") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(sig)}"


@pytest.fixture(scope="module")
def key():
    return new_key()


@pytest.fixture
def hub():
    with InProcessDevHub(seed=SEED) as h:
        yield h


@pytest.fixture
def served():
    with DevHubThread(seed=SEED) as h:
        yield h


def register(hub, key, **extra):
    doc = {"slug": "bzzz-agent", "owner": "acme", "public_key": public_pem(key), **extra}
    r = hub.client().post("/_devhub/apps", json=doc)
    assert r.status_code == 201, r.text
    return r.json()


def install(hub, app_id, **doc):
    r = hub.client().post(f"/_devhub/apps/{app_id}/installations",
                          json={"account": "acme", **doc})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def as_app(hub, token):
    return hub.client(headers={"Authorization": f"Bearer {token}"})


def as_token(hub, token):
    return hub.client(headers={"Authorization": f"token {token}"})


def mint(hub, key, app_id, inst, **body):
    r = as_app(hub, make_jwt(app_id, key, time.time())).post(
        f"/app/installations/{inst}/access_tokens", json=body or None)
    assert r.status_code == 201, r.text
    return r.json()


def test_app_and_installations_with_a_valid_jwt(hub, key):
    app = register(hub, key)
    assert app["bot"] == "bzzz-agent[bot]"
    inst = install(hub, app["id"])
    c = as_app(hub, make_jwt(app["id"], key, time.time()))
    doc = c.get("/app").json()
    assert doc["id"] == app["id"] and doc["slug"] == "bzzz-agent"
    assert doc["owner"]["login"] == "acme" and doc["permissions"]["issues"] == "write"
    installs = c.get("/app/installations").json()
    assert [(i["id"], i["account"]["login"], i["repository_selection"]) for i in installs] == \
        [(inst, "acme", "all")]
    assert installs[0]["access_tokens_url"].endswith(f"/app/installations/{inst}/access_tokens")
    assert c.get(f"/app/installations/{inst}").json()["app_slug"] == "bzzz-agent"
    assert c.get("/app/installations/999999").status_code == 404
    # an integer iss works as well as a string one (GitHub takes the app id either way)
    now = int(time.time())
    ok = signed(key, {"iat": now - 60, "exp": now + 300, "iss": app["id"]})
    assert as_app(hub, ok).get("/app").status_code == 200


def test_jwt_rejections_carry_githubs_messages(hub, key):
    app = register(hub, key)
    now = int(time.time())
    iss = str(app["id"])
    cases = [
        (signed(key, {"iat": now - 60, "exp": now + 900, "iss": iss}), "too far in the future"),
        (signed(key, {"iat": now - 700, "exp": now - 30, "iss": iss}),
         "must be a numeric value representing the future time"),
        (signed(key, {"iat": now + 120, "exp": now + 300, "iss": iss}), "'Issued at' claim"),
        (signed(new_key(), {"iat": now - 60, "exp": now + 300, "iss": iss}),
         "could not be decoded"),
        (signed(key, {"iat": now - 60, "exp": now + 300, "iss": "424242"}),
         "could not be decoded"),
        ("not-a-jwt", "could not be decoded"),
        ("t-acme", "could not be decoded"),  # a user's token is no JWT
    ]
    for token, message in cases:
        r = as_app(hub, token).get("/app")
        assert r.status_code == 401 and message in r.json()["message"], (token[:20], r.text)
    # alg none (or anything but RS256) is refused even with a good body
    head = b64(json.dumps({"alg": "none"}).encode())
    body = b64(json.dumps({"iat": now - 60, "exp": now + 300, "iss": iss}).encode())
    assert as_app(hub, f"{head}.{body}.").get("/app").status_code == 401
    assert hub.client().get("/app").status_code == 401


def test_installation_token_acts_as_the_bot_with_its_permissions(hub, key):
    app = register(hub, key)
    inst = install(hub, app["id"], repositories=["acme/widgets", "acme/secret"])
    tok = mint(hub, key, app["id"], inst)
    assert tok["token"].startswith("ghs_") and len(tok["token"]) == 40
    assert tok["repository_selection"] == "selected"
    expires = calendar.timegm(time.strptime(tok["expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 3500 < expires - time.time() <= 3600
    bot = as_token(hub, tok["token"])
    r = bot.post("/repos/acme/widgets/issues", json={"title": "filed by the app"})
    assert r.status_code == 201 and r.json()["user"]["login"] == "bzzz-agent[bot]"
    assert bot.get("/repos/acme/secret").status_code == 200  # private, but installed
    # outside the installation: public reads yes, writes no, private repos invisible
    assert bot.get("/repos/acme/tools/issues").status_code == 200
    r = bot.post("/repos/acme/tools/issues", json={"title": "x"})
    assert r.status_code == 403 and r.json()["message"] == "Resource not accessible by integration"
    assert bot.post("/repos/eve/other/issues", json={"title": "x"}).status_code == 403
    # /user is not for installation tokens
    r = bot.get("/user")
    assert r.status_code == 403 and "not accessible by integration" in r.json()["message"]
    # git refs (contents: write) work, as does a claim ref
    head = bot.get("/repos/acme/widgets/git/matching-refs/heads").json()
    assert isinstance(head, list)


def test_fine_grained_permissions_are_enforced(hub, key):
    app = register(hub, key, permissions={"issues": "write", "contents": "read",
                                          "metadata": "read"})
    inst = install(hub, app["id"])
    bot = as_token(hub, mint(hub, key, app["id"], inst)["token"])
    assert bot.post("/repos/acme/widgets/issues", json={"title": "ok"}).status_code == 201
    assert bot.get("/repos/acme/widgets/pulls").status_code == 403  # no pull_requests
    r = bot.post("/repos/acme/widgets/git/refs", json={"ref": "refs/bzzz/claims/1",
                                                       "sha": "0" * 40})
    assert r.status_code == 403  # contents is read only
    # asking for more than the installation has, or a repository it lacks: 422
    c = as_app(hub, make_jwt(app["id"], key, time.time()))
    r = c.post(f"/app/installations/{inst}/access_tokens",
               json={"permissions": {"pull_requests": "write"}})
    assert r.status_code == 422 and "not granted" in r.json()["message"]
    r = c.post(f"/app/installations/{inst}/access_tokens", json={"repositories": ["other"]})
    assert r.status_code == 422
    narrow = mint(hub, key, app["id"], inst, repositories=["tools"],
                  permissions={"issues": "read"})
    assert [x["full_name"] for x in narrow["repositories"]] == ["acme/tools"]
    nb = as_token(hub, narrow["token"])
    assert nb.get("/repos/acme/tools/issues").status_code == 200
    assert nb.post("/repos/acme/tools/issues", json={"title": "x"}).status_code == 403
    assert nb.post("/repos/acme/widgets/issues", json={"title": "x"}).status_code == 403


def test_tokens_expire_and_can_be_revoked(hub, key):
    app = register(hub, key, token_lifetime=2)
    inst = install(hub, app["id"])
    tok = mint(hub, key, app["id"], inst)["token"]
    bot = as_token(hub, tok)
    assert bot.get("/repos/acme/widgets/issues").status_code == 200
    hub.advance_clock(3)  # past the token's 2 s (devhub's clock, clock.py)
    r = bot.get("/repos/acme/widgets/issues")
    assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
    # the lifetime is the admin's to change; DELETE /installation/token revokes one
    admin = hub.client()
    assert admin.patch(f"/_devhub/apps/{app['id']}",
                       json={"token_lifetime": 600}).status_code == 200
    tok = mint(hub, key, app["id"], inst)["token"]
    bot = as_token(hub, tok)
    assert bot.delete("/installation/token").status_code == 204
    assert bot.get("/repos/acme/widgets/issues").status_code == 401
    # the admin API revokes installation tokens and users' tokens alike
    tok = mint(hub, key, app["id"], inst)["token"]
    assert admin.delete(f"/_devhub/installations/{inst}/tokens").status_code == 204
    assert as_token(hub, tok).get("/repos/acme/widgets/issues").status_code == 401
    assert admin.post("/_devhub/tokens/revoke", json={"token": "t-eve"}).status_code == 204
    assert as_token(hub, "t-eve").get("/user").status_code == 401
    assert admin.post("/_devhub/tokens/revoke", json={"token": "nope"}).status_code == 404


def test_a_removed_key_makes_new_jwts_fail_and_a_second_key_rotates(hub, key):
    app = register(hub, key)
    inst = install(hub, app["id"])
    second = new_key()
    r = hub.client().post(f"/_devhub/apps/{app['id']}/keys",
                          json={"public_key": public_pem(second)})
    assert r.status_code == 201
    mint(hub, key, app["id"], inst)
    mint(hub, second, app["id"], inst)
    assert hub.client().delete(f"/_devhub/apps/{app['id']}/keys/{app['key_id']}").status_code \
        == 204
    r = as_app(hub, make_jwt(app["id"], key, time.time())).post(
        f"/app/installations/{inst}/access_tokens")
    assert r.status_code == 401 and r.json()["message"] == "A JSON web token could not be decoded"
    mint(hub, second, app["id"], inst)


def test_git_over_smart_http_with_an_installation_token(served, key, tmp_path):
    app = register(served, key, permissions={"contents": "read", "issues": "write",
                                             "metadata": "read"})
    inst = install(served, app["id"])
    token = mint(served, key, app["id"], inst)["token"]
    host = served.url.split("://", 1)[1]
    url = f"http://x-access-token:{token}@{host}/acme/secret.git"
    env = {"GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    # contents: read is no push
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "w")], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path / "w"), "-c", "user.name=a", "-c",
                    "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "x"], check=True,
                   env=env)
    r = subprocess.run(["git", "-C", str(tmp_path / "w"), "push", url, "main:refs/heads/x"],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and token not in r.stderr.replace(url, "")


def test_admin_api_validates_and_state_persists(tmp_path, key):
    state = tmp_path / "hub.json"
    with InProcessDevHub(seed=SEED, state_file=str(state)) as hub:
        for bad in ({"slug": "Bad Slug"}, {"slug": "ok", "public_key": "nope"},
                    {"slug": "ok2", "token_lifetime": 0},
                    {"slug": "ok3", "permissions": {"issues": "everything"}}):
            r = hub.client().post("/_devhub/apps", json=bad)
            assert r.status_code == 422, (bad, r.text)
        app = register(hub, key)
        r = hub.client().post(f"/_devhub/apps/{app['id']}/installations",
                              json={"account": "acme", "repositories": ["eve/other"]})
        assert r.status_code == 422
        inst = install(hub, app["id"])
        tok = mint(hub, key, app["id"], inst)["token"]
        hub.app.on_change()
    hub2 = load_state(state)
    assert hub2.apps.resolve(tok, time.time())[0] == "bzzz-agent[bot]"
    assert hub2.apps.app(app["id"]).slug == "bzzz-agent"
    save_state(hub2, state)  # and round-trips again
    assert load_state(state).apps.installations[inst].account == "acme"
