"""Short-lived GitHub credentials: the providers against devhub in-process, then real agent
processes that keep working across refreshes, rotations and revocations."""

import os
import sys
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bzzz.github.credentials import (CredentialError, GitHubApp, SecretFile, TokenCommand,
                                    TokenFile, from_config)
from bzzz.github.client import GitHubClient, GitHubError
from bzzz.config import ConfigError, load_config
from bzzz.devhub import DevHub, DevHubThread
from bzzz.redact import redact
from bzzz.testing import agents
from bzzz.testing.wait import wait_for

SEED = {"users": [{"login": "acme", "token": "t-acme"}, {"login": "bot", "token": "t-bot-one"}],
        "repos": [{"full_name": "acme/tasks", "push": ["bot"]}]}


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def public_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@asynccontextmanager
async def devhub(seed=SEED):
    hub = DevHub(seed=seed)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        async with httpx.AsyncClient(base_url=hub.url) as admin:
            yield hub, admin
        nursery.cancel_scope.cancel()


async def app_on(admin, key, lifetime=3600, **extra):
    r = await admin.post("/_devhub/apps", json={"slug": "bzzz-agent", "owner": "acme",
                                                "public_key": public_pem(key),
                                                "token_lifetime": lifetime, **extra})
    assert r.status_code == 201, r.text
    app = r.json()
    r = await admin.post(f"/_devhub/apps/{app['id']}/installations", json={"account": "acme"})
    assert r.status_code == 201, r.text
    return app, r.json()["id"]


# ---------------------------------------------------------------- the App, in-process


async def test_app_tokens_refresh_before_expiry_with_no_failed_request(tmp_path, key):
    (tmp_path / "app.pem").write_bytes(private_pem(key))
    async with devhub() as (hub, admin):
        app, inst = await app_on(admin, key, lifetime=2)
        provider = GitHubApp(hub.url, app["id"], tmp_path / "app.pem", owner="acme")
        async with GitHubClient(hub.url, provider) as gh, trio.open_nursery() as nursery:
            assert await provider.login() == "bzzz-agent[bot]"
            nursery.start_soon(provider.run)
            failures = []

            async def loop(i):
                while provider.refreshes < 4:
                    try:
                        await gh.request("GET", "/repos/acme/tasks/issues")
                        await gh.request("POST", "/repos/acme/tasks/issues",
                                         json={"title": f"from {i}"})
                    except GitHubError as exc:
                        failures.append(str(exc))
                    await trio.sleep(0.05)

            with trio.fail_after(30):
                async with trio.open_nursery() as loops:
                    for i in range(3):
                        loops.start_soon(loop, i)
            nursery.cancel_scope.cancel()
        assert failures == []
        assert provider.installation_id == inst  # found on the first repo's owner
        assert gh.unauthorized == 0 and gh.expired_credential_failures == 0
        assert provider.refreshes >= 4 and gh.requests > 20
        assert provider.expires_at is not None and provider.token.startswith("ghs_")
        assert redact(provider.token) == "[redacted]"
        author = hub.hub.repos["acme/tasks"].issues[1].user
        assert author == "bzzz-agent[bot]"


async def test_app_token_revoked_is_replaced_after_one_401(tmp_path, key):
    (tmp_path / "app.pem").write_bytes(private_pem(key))
    async with devhub() as (hub, admin):
        app, inst = await app_on(admin, key)
        provider = GitHubApp(hub.url, app["id"], tmp_path / "app.pem", installation_id=inst)
        async with GitHubClient(hub.url, provider) as gh:
            await gh.request("GET", "/repos/acme/tasks")
            first = provider.token
            assert (await admin.delete(f"/_devhub/installations/{inst}/tokens")).status_code == 204
            reply = await gh.request("POST", "/repos/acme/tasks/issues", json={"title": "once"})
            assert reply.status == 201 and provider.token != first
            assert gh.unauthorized == 1 and gh.credential_retries == 1
            assert gh.expired_credential_failures == 0
            assert len(hub.hub.repos["acme/tasks"].issues) == 1  # the POST landed once


async def test_a_revoked_app_key_gives_a_clear_error(tmp_path, key):
    pem = tmp_path / "app.pem"
    pem.write_bytes(private_pem(key))
    async with devhub() as (hub, admin):
        app, inst = await app_on(admin, key)
        provider = GitHubApp(hub.url, app["id"], pem, installation_id=inst)
        async with GitHubClient(hub.url, provider) as gh:
            await gh.request("GET", "/repos/acme/tasks")
            token = provider.token
            await admin.delete(f"/_devhub/apps/{app['id']}/keys/{app['key_id']}")
            await admin.delete(f"/_devhub/installations/{inst}/tokens")
            with pytest.raises(CredentialError) as err:
                await gh.request("GET", "/repos/acme/tasks")
            text = str(err.value)
            assert "A JSON web token could not be decoded" in text and "app_key_file" in text
            assert token not in text and "PRIVATE KEY" not in text
            assert gh.expired_credential_failures == 1 and provider.failures == 1
            # the key file rotated to a key the app knows: it works again, no restart
            second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            await admin.post(f"/_devhub/apps/{app['id']}/keys",
                             json={"public_key": public_pem(second)})
            tmp = tmp_path / "app.pem.new"
            tmp.write_bytes(private_pem(second))
            os.replace(tmp, pem)
            assert (await gh.request("GET", "/repos/acme/tasks")).status == 200


async def test_a_failed_refresh_keeps_the_token_while_it_is_valid(tmp_path, key):
    import time
    (tmp_path / "app.pem").write_bytes(private_pem(key))
    clock = [time.time()]
    async with devhub() as (hub, admin):
        app, inst = await app_on(admin, key)
        provider = GitHubApp(hub.url, app["id"], tmp_path / "app.pem", installation_id=inst,
                             clock=lambda: clock[0])
        token = await provider.current()
        await admin.delete(f"/_devhub/apps/{app['id']}/keys/{app['key_id']}")
        clock[0] += 0.85 * 3600  # past the refresh point, before the expiry
        assert await provider.current() == token and provider.failures == 1
        assert await provider.current() == token and provider.failures == 1  # not per request
        clock[0] += 0.2 * 3600  # expired: now it is an error
        with pytest.raises(CredentialError, match="could not be decoded"):
            await provider.current()


async def test_app_errors_name_the_problem(tmp_path, key):
    async with devhub() as (hub, admin):
        app, inst = await app_on(admin, key)
        missing = GitHubApp(hub.url, app["id"], tmp_path / "none.pem", owner="acme")
        with pytest.raises(CredentialError, match="none.pem: No such file"):
            await missing.current()
        (tmp_path / "bad.pem").write_text("not a key")
        with pytest.raises(CredentialError, match="not an unencrypted PEM private key"):
            await GitHubApp(hub.url, app["id"], tmp_path / "bad.pem", owner="acme").current()
        (tmp_path / "app.pem").write_bytes(private_pem(key))
        with pytest.raises(CredentialError, match="not installed on nobody"):
            await GitHubApp(hub.url, app["id"], tmp_path / "app.pem", owner="nobody").current()
        with pytest.raises(CredentialError, match="404"):
            await GitHubApp(hub.url, app["id"], tmp_path / "app.pem",
                            installation_id=inst + 1000).current()


# ---------------------------------------------------------------- token command and file


def script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "cmd.py"
    path.write_text(body)
    return [sys.executable, str(path)]


async def test_token_command_reruns_after_a_401(tmp_path):
    source = tmp_path / "vault"
    source.write_text("t-bot-one")
    runs = tmp_path / "runs"
    argv = script(tmp_path, f"import pathlib\np = pathlib.Path({str(runs)!r})\n"
                            f"p.write_text(str(int(p.read_text() or 0) + 1) if p.exists() else '1')\n"
                            f"print(pathlib.Path({str(source)!r}).read_text())\n")
    async with devhub() as (hub, admin):
        provider = TokenCommand(argv, refresh_every=3600, timeout=10)
        async with GitHubClient(hub.url, provider) as gh:
            assert (await gh.request("GET", "/user")).data["login"] == "bot"
            await admin.post("/_devhub/seed", json={"users": [{"login": "bot",
                                                               "token": "t-bot-two"}]})
            source.write_text("t-bot-two")
            await admin.post("/_devhub/tokens/revoke", json={"token": "t-bot-one"})
            assert (await gh.request("GET", "/user")).data["login"] == "bot"
            assert runs.read_text() == "2" and provider.refreshes == 1
            assert gh.unauthorized == 1 and gh.expired_credential_failures == 0
            # the command now prints a revoked token: the 401 is raised, as before
            await admin.post("/_devhub/tokens/revoke", json={"token": "t-bot-two"})
            with pytest.raises(GitHubError) as err:
                await gh.request("GET", "/user")
            assert err.value.status == 401 and "t-bot-two" not in str(err.value)
            assert gh.expired_credential_failures == 1


async def test_token_command_on_a_schedule(tmp_path):
    clock = [1000.0]
    counter = tmp_path / "n"
    argv = script(tmp_path, f"import pathlib\np = pathlib.Path({str(counter)!r})\n"
                            "n = int(p.read_text()) + 1 if p.exists() else 1\n"
                            "p.write_text(str(n))\nprint(f'tok-{n:08d}')\n")
    provider = TokenCommand(argv, refresh_every=60, clock=lambda: clock[0])
    assert await provider.current() == "tok-00000001"
    clock[0] += 30
    assert await provider.current() == "tok-00000001"
    clock[0] += 31
    assert await provider.current() == "tok-00000002" and provider.refreshes == 1


async def test_token_command_errors_never_show_the_token(tmp_path):
    leaky = script(tmp_path, "import sys\nprint('ghx-leaked-secret-value')\n"
                             "print('denied: ghx-leaked-secret-value', file=sys.stderr)\n"
                             "sys.exit(3)\n")
    with pytest.raises(CredentialError) as err:
        await TokenCommand(leaky).current()
    text = str(err.value)
    assert "exit status 3" in text and "denied" in text and "ghx-leaked" not in text
    with pytest.raises(CredentialError, match="no token within 0.5 s"):
        await TokenCommand([sys.executable, "-c", "import time; time.sleep(30)"],
                           timeout=0.5).current()
    with pytest.raises(CredentialError, match="program not found"):
        await TokenCommand("/nonexistent/vault kv get -field=token x").current()
    with pytest.raises(CredentialError, match="output: empty"):
        await TokenCommand([sys.executable, "-c", "pass"]).current()
    with pytest.raises(CredentialError, match="not a single token"):
        await TokenCommand([sys.executable, "-c", "print('two words')"]).current()
    with pytest.raises(ValueError):
        TokenCommand("")


async def test_token_file_rotates_without_restart(tmp_path):
    path = tmp_path / "token"
    path.write_text("t-bot-one\n")
    async with devhub() as (hub, admin):
        provider = TokenFile(path)
        async with GitHubClient(hub.url, provider) as gh:
            assert (await gh.request("GET", "/user")).data["login"] == "bot"
            await admin.post("/_devhub/seed", json={"users": [{"login": "acme",
                                                               "token": "t-acme-two"}]})
            tmp = tmp_path / "token.new"
            tmp.write_text("t-acme-two\n")
            os.replace(tmp, path)  # how Vault agent and Kubernetes write a secret
            assert (await gh.request("GET", "/user")).data["login"] == "acme"
            assert provider.refreshes == 1 and gh.unauthorized == 0
            path.unlink()  # mid-rotation: the last token is kept
            assert (await gh.request("GET", "/user")).data["login"] == "acme"
    with pytest.raises(CredentialError, match="empty"):
        (tmp_path / "blank").write_text("\n")
        TokenFile(tmp_path / "blank").read()


async def test_replaced_tokens_stay_redacted_for_a_while_then_are_forgotten():
    from bzzz.github.credentials import KEEP_REDACTING, CredentialProvider
    p = CredentialProvider()
    tokens = [f"rotated-token-{i:04d}" for i in range(KEEP_REDACTING + 3)]
    for t in tokens:
        from bzzz.redact import register
        register(t)
        p._got(t)
    assert all(redact(t) == "[redacted]" for t in tokens[3:])
    assert [redact(t) for t in tokens[:2]] == tokens[:2]
    assert p.refreshes == len(tokens) - 1


def test_secret_file_rereads_on_change(tmp_path):
    path = tmp_path / "secret"
    path.write_text("It's a Secret to Everybody\n")
    secret = SecretFile(path, "github.webhook_secret_file")
    assert secret() == "It's a Secret to Everybody"
    path.write_text("a new secret, longer\n")
    assert secret() == "a new secret, longer" and secret.rotations == 1


def test_api_token_and_webhook_secret_rotate(tmp_path):
    from bzzz.api import Api
    from bzzz.claim.webhook import WebhookIntake
    from bzzz.github.webhooks import sign

    api_file, hook_file = tmp_path / "api", tmp_path / "hook"
    api_file.write_text("api-token-one-0123\n")
    hook_file.write_text("hook secret one\n")
    api = Api(lambda: {}, lambda: b"", token=SecretFile(api_file, "api_token_file"))
    hook = WebhookIntake(SecretFile(hook_file, "github.webhook_secret_file"), lambda *a: None)

    def scope(token):
        return {"headers": [(b"authorization", b"Bearer " + token.encode())]}

    def delivery(secret):
        body = b'{"zen": "ok"}'
        return hook.handle({"x-hub-signature-256": sign(secret, body), "x-github-delivery":
                            secret, "x-github-event": "ping"}, body)[0]

    assert api._denied(scope("api-token-one-0123")) is None
    assert delivery("hook secret one") != 401
    api_file.write_text("api-token-two-4567\n")
    hook_file.write_text("hook secret two\n")
    assert api._denied(scope("api-token-one-0123"))[0] == 401
    assert api._denied(scope("api-token-two-4567")) is None
    assert delivery("hook secret one") == 401 and delivery("hook secret two") != 401


def test_config_takes_exactly_one_credential(tmp_path):
    c = load_config(env={"BZZZ_GITHUB__TOKEN_COMMAND": "vault kv get -field=token secret/bzzz"})
    assert c.github.token_command == ["vault", "kv", "get", "-field=token", "secret/bzzz"]
    assert isinstance(from_config(c.github), TokenCommand)
    c = load_config(env={"BZZZ_GITHUB__APP_ID": "7", "BZZZ_GITHUB__APP_KEY_FILE": "/k.pem",
                         "BZZZ_GITHUB__REPOS": "acme/tasks"})
    p = from_config(c.github)
    assert isinstance(p, GitHubApp) and p.owner == "acme" and p.installation_id is None
    for env, words in [
        ({"BZZZ_GITHUB__APP_ID": "7"}, "go together"),
        ({"BZZZ_GITHUB__TOKEN_COMMAND": "gh auth token", "GITHUB_TOKEN_FILE": "/t"},
         "not token_file and token_command"),
        ({"BZZZ_GITHUB__INSTALLATION_ID": "3"}, "needs github.app_id"),
        ({"BZZZ_GITHUB__TOKEN_COMMAND": "gh 'auth"}, "token_command"),
        ({"BZZZ_GITHUB__APP_ID": "zero", "BZZZ_GITHUB__APP_KEY_FILE": "/k"}, "app_id"),
    ]:
        with pytest.raises(ConfigError, match=words):
            load_config(env=env)
    # an empty GITHUB_TOKEN_FILE is no token file (so another credential can be chosen)
    c = load_config(env={"GITHUB_TOKEN_FILE": "", "BZZZ_GITHUB__TOKEN_COMMAND": "gh auth token"})
    assert c.github.token_file is None


# ---------------------------------------------------------------- real agent processes


def status(agent):
    return httpx.get(agent.api + "/api/v1/status", timeout=5).json()


def labels(owner, n):
    return {x["name"] for x in owner.get(f"/repos/acme/tasks/issues/{n}").json()["labels"]}


def task(owner, text):
    return owner.post("/repos/acme/tasks/issues", json={
        "title": text, "body": f"```bzzz\necho {text}\n```", "labels": ["bzzz"]}).json()["number"]


FAST = {"BZZZ_GITHUB__POLL_INTERVAL": "0.3", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
        "BZZZ_HELP_REQUESTS": "off"}


def test_agent_with_a_github_app_across_refreshes_and_a_revoked_key(tmp_path, key, workdir):
    pem = tmp_path / "app.pem"
    pem.write_bytes(private_pem(key))
    with DevHubThread(seed=SEED) as hub:
        admin = httpx.Client(base_url=hub.url)
        app = admin.post("/_devhub/apps", json={"slug": "bzzz-agent", "owner": "acme",
                                                "public_key": public_pem(key),
                                                "token_lifetime": 3}).json()
        inst = admin.post(f"/_devhub/apps/{app['id']}/installations",
                          json={"account": "acme"}).json()["id"]
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-acme"})
        a = agents.start(tmp_path, "a", hub.url, "unused", "acme/tasks", GITHUB_TOKEN_FILE="",
                         BZZZ_GITHUB__APP_ID=str(app["id"]), BZZZ_GITHUB__APP_KEY_FILE=str(pem),
                         BZZZ_WORKSPACE_DIR=os.path.join(workdir, "a"), **FAST)
        try:
            first = task(owner, "first")
            wait_for(lambda: "bzzz:done" in labels(owner, first), 60, what="the first task")
            wait_for(lambda: status(a)["github"]["credential_refreshes"] >= 3, 30,
                     what="three refreshes")
            second = task(owner, "second")
            wait_for(lambda: "bzzz:done" in labels(owner, second), 60, what="the second task")
            gh = status(a)["github"]
            assert gh["login"] == "bzzz-agent[bot]"
            assert gh["credentials"]["kind"] == "app"
            assert gh["expired_credential_failures"] == 0 and gh["unauthorized_responses"] == 0
            assert gh["credential_refreshes"] >= 3 and gh["requests"] > 20
            comments = owner.get(f"/repos/acme/tasks/issues/{second}/comments").json()
            assert {c["user"]["login"] for c in comments} == {"bzzz-agent[bot]"}
            # the key revoked: a clear error in the log, the agent stays up
            admin.delete(f"/_devhub/apps/{app['id']}/keys/{app['key_id']}")
            admin.delete(f"/_devhub/installations/{inst}/tokens")
            wait_for(lambda: "A JSON web token could not be decoded" in a.log.read_text(), 30,
                     what="the revoked key is logged")
            assert a.proc.poll() is None
            assert httpx.get(a.api + "/healthz").status_code == 200
            assert "could not be decoded" in status(a)["github"]["credentials"]["last_error"]
        finally:
            assert a.stop() == 0
        text = a.log.read_text()
        assert "ghs_" not in text and "PRIVATE KEY" not in text
        assert "Traceback" not in text


def test_agent_token_command_rotation_after_a_401(tmp_path, workdir):
    source = tmp_path / "vault"
    source.write_text("t-bot-one")
    with DevHubThread(seed=SEED) as hub:
        admin = httpx.Client(base_url=hub.url)
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-acme"})
        cmd = f"{sys.executable} -c \"print(open('{source}').read())\""
        a = agents.start(tmp_path, "a", hub.url, "unused", "acme/tasks", GITHUB_TOKEN_FILE="",
                         BZZZ_GITHUB__TOKEN_COMMAND=cmd,
                         BZZZ_WORKSPACE_DIR=os.path.join(workdir, "a"), **FAST)
        try:
            first = task(owner, "first")
            wait_for(lambda: "bzzz:done" in labels(owner, first), 60, what="the first task")
            admin.post("/_devhub/seed", json={"users": [{"login": "bot", "token": "t-bot-two"}]})
            source.write_text("t-bot-two")
            admin.post("/_devhub/tokens/revoke", json={"token": "t-bot-one"})
            second = task(owner, "second")
            wait_for(lambda: "bzzz:done" in labels(owner, second), 60, what="the second task")
            gh = status(a)["github"]
            assert gh["credentials"]["kind"] == "token_command"
            assert gh["credential_refreshes"] == 1 and gh["credential_retries"] >= 1
            assert gh["expired_credential_failures"] == 0
        finally:
            assert a.stop() == 0
        text = a.log.read_text()
        assert "t-bot-one" not in text and "t-bot-two" not in text


def test_agent_token_file_rotated_while_running(tmp_path, workdir):
    with DevHubThread(seed=SEED) as hub:
        admin = httpx.Client(base_url=hub.url)
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-acme"})
        a = agents.start(tmp_path, "a", hub.url, "t-bot-one", "acme/tasks",
                         BZZZ_WORKSPACE_DIR=os.path.join(workdir, "a"), **FAST)
        token_file = tmp_path / "a.token"
        try:
            first = task(owner, "first")
            wait_for(lambda: "bzzz:done" in labels(owner, first), 60, what="the first task")
            admin.post("/_devhub/seed", json={"users": [{"login": "bot", "token": "t-bot-two"}]})
            tmp = tmp_path / "a.token.new"
            tmp.write_text("t-bot-two\n")
            os.replace(tmp, token_file)
            wait_for(lambda: status(a)["github"]["credential_refreshes"] == 1, 20,
                     what="the new token is read")
            admin.post("/_devhub/tokens/revoke", json={"token": "t-bot-one"})
            second = task(owner, "second")
            wait_for(lambda: "bzzz:done" in labels(owner, second), 60, what="the second task")
            gh = status(a)["github"]
            assert gh["expired_credential_failures"] == 0 and gh["unauthorized_responses"] == 0
        finally:
            assert a.stop() == 0
        text = a.log.read_text()
        assert "t-bot-one" not in text and "t-bot-two" not in text
