"""The repository's own setup: its sources parsed into steps (bzzz/repo/setupfiles.py, a
core), the cache key, .bzzz.toml's settings, and the node's cache of setups
(bzzz/repo/setupcache.py) against hostile tar files."""

import io
import os
import tarfile

import pytest

from bzzz.repo.setupcache import CacheError, SetupCache
from bzzz.repo.setupfiles import (COPILOT_SETUP, DEVCONTAINER, SETUP_SH, cache_key,
                                  is_lockfile, parse_copilot, parse_devcontainer,
                                  parse_settings, plan, strip_jsonc)

COPILOT = """
name: "Copilot Setup Steps"
on: workflow_dispatch
jobs:
  copilot-setup-steps:
    runs-on: ubuntu-latest
    env:
      CI_LEVEL: 2
    steps:
      - name: Checkout code
        uses: actions/checkout@v4
      - name: Install deps
        run: npm ci
        env:
          NODE_ENV: "it's test"
          "bad name": x
      - run: |
          echo one
          echo two
        working-directory: web/app
      - name: escape
        run: ls
        working-directory: ../..
      - name: expr
        run: echo ${{ secrets.X }}
      - name: nothing
      - just a string
  other:
    steps:
      - run: never
"""


def test_copilot_setup_steps_are_the_run_steps_of_its_job():
    steps, notes = parse_copilot(COPILOT)
    assert [s.name for s in steps] == ["Install deps", "step 3", "expr"]
    install = steps[0].script
    assert install.startswith("export CI_LEVEL=2\nexport NODE_ENV='it'\"'\"'s test'\n")
    assert install.endswith("npm ci")
    assert steps[1].script == "export CI_LEVEL=2\ncd -- web/app\necho one\necho two\n"
    joined = "\n".join(notes)
    assert "`uses: actions/checkout@v4`): an action, not run by Bzzz" in joined
    assert "working-directory outside the checkout" in joined
    assert "expressions are not evaluated" in joined
    assert "env 'bad name' ignored" in joined and "'nothing': no `run`" in joined
    assert "step 7 is not a mapping" in joined
    assert all(s.source == COPILOT_SETUP for s in steps)


@pytest.mark.parametrize("text,says", [
    ("jobs: [unclosed", "is not YAML"),
    ("- a list", "has no job `copilot-setup-steps`"),
    ("jobs:\n  copilot-setup-steps: {}", "has no job `copilot-setup-steps`"),
    ("", "has no job"),
    ("a: &a [x]\nb: [*a, *a]\n", "has no job"),
])
def test_bad_copilot_files_say_why(text, says):
    steps, notes = parse_copilot(text)
    assert steps == [] and says in notes[0]


def test_devcontainer_json_with_comments():
    text = """{
      // the image
      "image": "mcr.microsoft.com/devcontainers/python:3.12", /* trailing, */
      "postCreateCommand": "pip install -r requirements.txt // not a comment",
      "features": {"a": {},},
    }"""
    assert '"// not a comment"' not in strip_jsonc(text)
    image, steps, notes = parse_devcontainer(text)
    assert image == "mcr.microsoft.com/devcontainers/python:3.12"
    assert steps[0].script == "pip install -r requirements.txt // not a comment"
    assert notes == []
    _, steps, _ = parse_devcontainer('{"postCreateCommand": ["npm", "run", "a b"]}')
    assert steps[0].script == "npm run 'a b'"
    _, steps, _ = parse_devcontainer('{"postCreateCommand": {"a": "x", "b": ["y"], "c": 3}}')
    assert [(s.name, s.script) for s in steps] == [("postCreateCommand a", "x"),
                                                     ("postCreateCommand b", "y")]


@pytest.mark.parametrize("text,says", [
    ("{", "is not JSON"), ("[1]", "is not an object"),
    ('{"image": "a b; rm -rf /"}', "is not an image name"),
    ('{"postCreateCommand": 3}', "is not a command"),
    ('{"build": {"dockerfile": "Dockerfile"}}', "build and dockerComposeFile are not used"),
])
def test_bad_devcontainers_say_why(text, says):
    image, steps, notes = parse_devcontainer(text)
    assert image is None and steps == [] and says in notes[0]


def test_one_source_gives_the_steps_the_others_are_listed():
    p = plan({SETUP_SH: "make deps", COPILOT_SETUP: COPILOT,
              DEVCONTAINER: '{"image": "debian:bookworm", "postCreateCommand": "x"}'})
    assert p.source == SETUP_SH and [s.script for s in p.steps] == ["make deps"]
    assert p.image == "debian:bookworm"
    assert any(f"`{COPILOT_SETUP}`: not run" in n for n in p.notes)
    assert any(f"`{DEVCONTAINER}`: not run" in n for n in p.notes)
    p = plan({COPILOT_SETUP: "jobs: [", DEVCONTAINER: '{"postCreateCommand": "x"}'})
    assert p.source == DEVCONTAINER and p.steps[0].script == "x"
    assert "is not YAML" in p.notes[0]
    p = plan({SETUP_SH: None})
    assert p.empty and "is not read" in p.notes[0]
    assert plan({}).empty and plan({DEVCONTAINER: ""}).empty


def test_the_cache_key_changes_with_what_the_setup_depends_on():
    p = plan({SETUP_SH: "npm ci"})
    key = cache_key("o/r", "bwrap", p, {SETUP_SH: "npm ci"}, {"package-lock.json": "a" * 40})
    assert key.isalnum() and len(key) == 32
    same = cache_key("O/R", "bwrap", p, {SETUP_SH: "npm ci"}, {"package-lock.json": "a" * 40})
    assert same == key
    for other in [
        cache_key("o/r2", "bwrap", p, {SETUP_SH: "npm ci"}, {"package-lock.json": "a" * 40}),
        cache_key("o/r", "container", p, {SETUP_SH: "npm ci"}, {"package-lock.json": "a" * 40}),
        cache_key("o/r", "bwrap", p, {SETUP_SH: "npm i"}, {"package-lock.json": "a" * 40}),
        cache_key("o/r", "bwrap", p, {SETUP_SH: "npm ci"}, {"package-lock.json": "b" * 40}),
        cache_key("o/r", "bwrap", p, {SETUP_SH: "npm ci"}, {}),
    ]:
        assert other != key
    assert is_lockfile("uv.lock") and is_lockfile("requirements-dev.txt")
    assert is_lockfile("requirements.txt") and not is_lockfile("package.json")


@pytest.mark.parametrize("text,required,test,error", [
    (None, False, None, None),
    ("[setup]\nrequired = true\n", True, None, None),
    ('test = "make check"\n[task]\negress = ["@npm"]\n', False, "make check", None),
    ("[setup]\nrequired = 'yes'\n", False, None, "must be true or false"),
    ("test = 3\n", False, None, "test must be a command"),
    ("[setup\n", False, None, ".bzzz.toml"),
])
def test_bzzz_toml_settings(text, required, test, error):
    s = parse_settings(text)
    assert (s.setup_required, s.test) == (required, test)
    assert (error is None and s.error is None) or (error and error in (s.error or ""))


# ------------------------------------------------------------------ the cache


def _ws(tmp_path, name):
    ws = tmp_path / name
    ws.mkdir()
    return ws


def test_save_and_restore_what_the_setup_made(tmp_path):
    cache = SetupCache(tmp_path / "cache")
    ws = _ws(tmp_path, "a")
    (ws / "node_modules" / "left-pad").mkdir(parents=True)
    (ws / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    (ws / "node_modules" / ".bin").mkdir()
    (ws / "node_modules" / ".bin" / "pad").symlink_to("../left-pad/index.js")
    (ws / ".venv" / "bin").mkdir(parents=True)
    (ws / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")  # an absolute target
    os.mkfifo(ws / "node_modules" / "fifo")
    saved = cache.save("k1", ws, ["node_modules/", ".venv/"])
    assert saved.files >= 6
    assert cache.lookup("k1") is not None and cache.lookup("k2") is None
    new = _ws(tmp_path, "b")
    (new / "node_modules").mkdir()
    names = cache.restore("k1", new)
    assert (new / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 1\n"
    assert os.readlink(new / "node_modules" / ".bin" / "pad") == "../left-pad/index.js"
    assert os.readlink(new / ".venv" / "bin" / "python") == "/usr/bin/python3"
    assert not (new / "node_modules" / "fifo").exists()
    assert "node_modules/left-pad/index.js" in names


def test_a_path_the_checkout_has_is_left_as_it_is(tmp_path):
    cache = SetupCache(tmp_path / "cache")
    ws = _ws(tmp_path, "a")
    (ws / "gen.txt").write_text("from the setup")
    cache.save("k", ws, ["gen.txt"])
    new = _ws(tmp_path, "b")
    (new / "gen.txt").write_text("tracked in this commit")
    cache.restore("k", new)
    assert (new / "gen.txt").read_text() == "tracked in this commit"


def _hostile(cache, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    cache.root.mkdir(parents=True, exist_ok=True)
    cache.path("evil").write_bytes(buf.getvalue())


def _info(name, kind=tarfile.REGTYPE, size=0, linkname="", mode=0o644):
    i = tarfile.TarInfo(name)
    i.type, i.size, i.linkname, i.mode = kind, size, linkname, mode
    return i


@pytest.mark.parametrize("members", [
    [(_info("/etc/evil", size=1), b"x")],
    [(_info("../evil", size=1), b"x")],
    [(_info("d", tarfile.SYMTYPE, linkname="/tmp"), None), (_info("d/evil", size=1), b"x")],
    [(_info("d", tarfile.SYMTYPE, linkname=".."), None), (_info("d/evil", size=1), b"x")],
    [(_info("h", tarfile.LNKTYPE, linkname="/etc/passwd"), None)],
    [(_info("dev", tarfile.CHRTYPE), None)],
])
def test_a_hostile_tar_writes_nothing_outside(tmp_path, members):
    cache = SetupCache(tmp_path / "cache")
    _hostile(cache, members)
    ws = _ws(tmp_path, "ws")
    try:
        names = cache.restore("evil", ws)
    except CacheError:
        names = []
    assert all(not n.startswith("/") for n in names)  # "/etc/evil" lands as ws/etc/evil
    assert not (tmp_path / "evil").exists() and not (ws / "dev").exists()
    assert not os.path.exists("/tmp/evil") and not os.path.exists("/etc/evil")


def test_set_uid_bits_are_dropped(tmp_path):
    cache = SetupCache(tmp_path / "cache")
    _hostile(cache, [(_info("tool", size=1, mode=0o4777), b"x")])
    ws = _ws(tmp_path, "ws")
    cache.restore("evil", ws)
    assert not os.stat(ws / "tool").st_mode & 0o4000


def test_bounded_entries_and_least_recently_used_eviction(tmp_path):
    cache = SetupCache(tmp_path / "cache", max_entry=64 * 1024, max_total=150 * 1024)
    ws = _ws(tmp_path, "a")
    (ws / "big").write_bytes(b"x" * 100 * 1024)
    with pytest.raises(CacheError, match="not cached"):
        cache.save("big", ws, ["big"])
    assert cache.lookup("big") is None and list(cache.root.iterdir()) == []
    (ws / "small").write_bytes(b"x" * 40 * 1024)
    for key in ("a", "b", "c"):
        cache.save(key, ws, ["small"])
        os.utime(cache.path(key), (1000 + ord(key), 1000 + ord(key)))
    cache.lookup("a")  # used now: the newest
    cache.save("d", ws, ["small"])
    left = sorted(p.stem for p in cache.root.glob("*.tar"))
    assert "a" in left and "d" in left and "b" not in left
    with pytest.raises(CacheError):
        cache.path("../x")


def _made(tmp_path):
    cache = SetupCache(tmp_path / "cache", spare_root=tmp_path / "spare")
    ws = _ws(tmp_path, "made")
    (ws / "node_modules" / "a").mkdir(parents=True)
    (ws / "node_modules" / "a" / "i.js").write_text("a\n")
    (ws / "web" / "node_modules").mkdir(parents=True)
    (ws / "web" / "node_modules" / "w.js").write_text("w\n")
    cache.save("k", ws, ["node_modules/", "web/node_modules/"])
    return cache


def test_a_spare_written_ahead_is_moved_in_at_once(tmp_path):
    cache = _made(tmp_path)
    assert cache.take_spare("k", tmp_path) is None  # none written yet
    assert cache.make_spare("k", (os.getuid(), os.getgid()))
    assert not cache.make_spare("k", None)  # one is there already
    assert oct((tmp_path / "spare").stat().st_mode & 0o777) == "0o700"
    ws = _ws(tmp_path, "task")
    (ws / "web").mkdir()
    assert cache.take_spare("k", ws) == ["node_modules", "web/node_modules"]
    assert (ws / "node_modules" / "a" / "i.js").read_text() == "a\n"
    assert (ws / "web" / "node_modules" / "w.js").read_text() == "w\n"
    assert cache.take_spare("k", _ws(tmp_path, "next")) is None  # taken: gone
    assert [p.name for p in (tmp_path / "spare").iterdir()] == []


def test_a_spare_is_not_moved_through_a_link_or_over_what_the_checkout_has(tmp_path):
    cache = _made(tmp_path)
    cache.make_spare("k", None)
    ws = _ws(tmp_path, "task")
    outside = _ws(tmp_path, "outside")
    (ws / "web").symlink_to(outside)  # the checkout's own link: nothing goes through it
    (ws / "node_modules").mkdir()
    assert cache.take_spare("k", ws) == []
    assert list(outside.iterdir()) == [] and list((ws / "node_modules").iterdir()) == []


def test_eviction_takes_the_spare_and_the_list_with_the_entry(tmp_path):
    cache = _made(tmp_path)
    cache.make_spare("k", None)
    cache.max_total = 0
    cache.evict()
    assert cache.lookup("k") is None and cache.paths("k") == []
    assert not (tmp_path / "spare" / "k").exists()


# ------------------------------------------------------------------ the glue, on real git


def _git(repo, *args):
    import subprocess
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(repo, files):
    for path, text in files.items():
        p = repo / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return _git(repo, "rev-parse", "HEAD")


async def test_a_review_round_reads_the_base_and_touches_what_its_pull_request_changed(tmp_path):
    from bzzz.claim.repofiles import read_repo_files
    from bzzz.repo.git import Git
    from bzzz.repo.workspace import Checkout
    repo = tmp_path / "r"
    _git(tmp_path, "init", "-q", str(repo))
    base = _commit(repo, {
        "AGENTS.md": "base rules\n", ".bzzz.toml": 'test = "make check"\n',
        ".github/instructions/py.instructions.md": "---\napplyTo: '**/*.py'\n---\npy rules\n",
        COPILOT_SETUP: "jobs:\n  copilot-setup-steps:\n    steps:\n      - run: make deps\n",
        "package-lock.json": "{}\n"})
    head = _commit(repo, {"AGENTS.md": "head rules\n", "src/x.py": "x = 1\n",
                          ".bzzz.toml": '[setup]\nrequired = true\n', SETUP_SH: "evil\n",
                          "package-lock.json": '{"changed": 1}\n'})
    co = Checkout("o/r", repo, tmp_path / "private", repo / ".git", head, "bzzz/1-x")
    files = await read_repo_files(Git(), co, "main", base, ["no paths here"])
    assert "base rules" in files.instructions and "head rules" not in files.instructions
    assert "py rules" in files.instructions  # src/x.py changed in the pull request
    assert files.check is not None and files.check.script == "make check"
    assert not files.settings.setup_required  # the head's .bzzz.toml does not count
    assert files.setup.source == COPILOT_SETUP and files.setup.steps[0].script == "make deps"
    fresh = Checkout("o/r", repo, tmp_path / "private", repo / ".git", base, "bzzz/1-x")
    again = await read_repo_files(Git(), fresh, "main", base, [])
    assert "py rules" not in again.instructions
    assert again.setup_key != files.setup_key  # the lockfile of the checkout's own commit
    # a workspace package's lockfile counts; a vendored one, or one too deep, does not
    keys = {}
    for name, changes in (("nested", {"packages/web/yarn.lock": "a\n"}),
                          ("nested2", {"packages/web/yarn.lock": "b\n"}),
                          ("vendored", {"node_modules/x/yarn.lock": "c\n"}),
                          ("deep", {"a/b/c/d/yarn.lock": "d\n"})):
        commit = _commit(repo, changes)
        co_n = Checkout("o/r", repo, tmp_path / "private", repo / ".git", commit, "bzzz/1-x")
        keys[name] = (await read_repo_files(Git(), co_n, "main", base, [])).setup_key
    assert len({keys["nested"], keys["nested2"], again.setup_key}) == 3
    assert keys["vendored"] == keys["nested2"] == keys["deep"]


def test_the_check_in_words():
    from bzzz.claim.report import check_lines
    from bzzz.claim.selfcheck import check_feedback
    from bzzz.claim.setup import StepRun
    failed = StepRun("test.sh", ".bzzz/test.sh", "failed", 2, 0.5, "x" * 5000 + "\nboom ```")
    text = check_feedback(failed, ".bzzz/test.sh")
    assert "failed (exit 2)" in text and "boom" in text and len(text) < 3400
    assert "``\u200b`" in text  # the output cannot close the fence
    assert check_lines(None) == []
    lines = "\n".join(check_lines({"source": "s", "passed": False, "retried": True,
                                   "runs": [{"status": "timeout", "exit_code": None}],
                                   "output": "late"}))
    assert "failed (timeout) after one more round" in lines and "late" in lines
