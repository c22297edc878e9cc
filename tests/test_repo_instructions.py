"""The repository's instructions for coding agents (bzzz/repo/instructions.py, a core):
GitHub's globs, the nearest AGENTS.md, Copilot's scoped files, the caps, and hostile trees;
then the same read from a real commit (bzzz/repo/basefiles.py)."""

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.repo.basefiles import BaseTree
from bzzz.repo.git import Git
from bzzz.repo.instructions import (COPILOT, MAX_FILE, MAX_TOTAL, Entry, Unreadable,
                                    apply_to_matches, candidates, gather, glob_regex,
                                    link_target, mentioned_paths, safe_path, split_globs)


def _tree(files):
    """A reader over {path: bytes | ("link", target)}."""
    def read(path):
        v = files.get(path)
        if v is None:
            return None
        if isinstance(v, tuple):
            return Entry("link", v[1].encode())
        if isinstance(v, Exception):
            raise v
        return Entry("file", v)
    return read


def _gather(files, touched=()):
    return gather(list(files), _tree(files), list(touched))


# ------------------------------------------------------------------ globs


@pytest.mark.parametrize("glob,path,hit", [
    ("**", "a/b/c.py", True),
    ("**/*.py", "c.py", True),
    ("**/*.py", "a/b/c.py", True),
    ("**/*.py", "a/b/c.pyc", False),
    ("*.py", "c.py", True),
    ("*.py", "a/c.py", False),  # a whole-path match: * stays in one directory
    ("src/**", "src/a/b.ts", True),
    ("src/**", "src", True),
    ("src/**", "srcx/a", False),
    ("src/**/test_*.py", "src/test_a.py", True),
    ("src/**/test_*.py", "src/x/y/test_a.py", True),
    ("src/**/test_*.py", "src/x/y/a.py", False),
    ("app/models/**/*.rb", "app/models/user.rb", True),
    ("app/models/**/*.rb", "app/controllers/user.rb", False),
    ("**/*.{ts,tsx}", "web/a.tsx", True),
    ("**/*.{ts,tsx}", "web/a.js", False),
    ("?.md", "a.md", True),
    ("?.md", "ab.md", False),
    ("[abc].md", "b.md", True),
    ("[!abc].md", "b.md", False),
    ("[!abc].md", "d.md", True),
    ("docs/*.md", "docs/a/b.md", False),
    ("/docs/*.md", "docs/x.md", True),
    ("./docs/*.md", "docs/x.md", True),
    ("a+b(c).md", "a+b(c).md", True),  # regex characters are literal
    ("[unclosed", "[unclosed", True),
])
def test_github_globs(glob, path, hit):
    assert bool(glob_regex(glob).match(path)) is hit


def test_apply_to_is_a_comma_separated_list():
    assert split_globs("**/*.ts, **/*.tsx") == ["**/*.ts", "**/*.tsx"]
    assert split_globs("**/*.{ts,tsx},docs/**") == ["**/*.{ts,tsx}", "docs/**"]
    assert split_globs(" , ,") == []
    assert apply_to_matches(split_globs("**/*.ts,**/*.tsx"), ["web/a.tsx"])
    assert not apply_to_matches(["**/*.ts"], [])
    assert apply_to_matches(["**"], [])  # everything: applies with no path known


@given(st.text(max_size=60))
def test_any_glob_compiles_and_never_raises(glob):
    glob_regex(glob).match("a/b/c.py")


def test_paths_an_issue_mentions():
    text = ("Fix `src/app.py` and lib/util/strings.ts; see https://example.org/a/b.html, "
            "run `make` and `--flag`; also ../../etc/passwd and `README.md`.")
    assert mentioned_paths(text) == ["src/app.py", "lib/util/strings.ts", "README.md"]
    assert safe_path("./a//b") is None and safe_path("/a/b/") == "a/b"
    assert safe_path("a/../b") is None and safe_path("a/\x00b") is None
    assert len(mentioned_paths(" ".join(f"d/f{i}.py" for i in range(500)))) == 64


def test_candidates_are_every_directory_above():
    c = candidates(["a/b/c.py"])
    assert c[:2] == ["AGENTS.md", "CLAUDE.md"]
    assert {"a/b/c.py/AGENTS.md", "a/b/AGENTS.md", "a/AGENTS.md", "a/CLAUDE.md"} <= set(c)
    assert c[-1] == COPILOT
    deep = candidates(["/".join(["d"] * 200) + "/f.py"])
    assert len(deep) <= 2 * 34 + 1  # bounded depth


def test_links_stay_inside_the_repository():
    assert link_target("CLAUDE.md", b"AGENTS.md") == "AGENTS.md"
    assert link_target("docs/CLAUDE.md", b"../AGENTS.md") == "AGENTS.md"
    assert link_target("CLAUDE.md", b"/etc/passwd") is None
    assert link_target("docs/CLAUDE.md", b"../../etc/passwd") is None
    assert link_target("CLAUDE.md", b"..") is None


# ------------------------------------------------------------------ choosing


TREE = {
    "AGENTS.md": b"root rules",
    "web/AGENTS.md": b"web rules",
    "web/ui/x.ts": b"",
    "CLAUDE.md": b"claude rules",
    COPILOT: b"copilot rules",
    ".github/instructions/py.instructions.md":
        b"---\napplyTo: \"**/*.py\"\n---\npython rules\n",
    ".github/instructions/all.instructions.md": b"---\napplyTo: '**'\n---\nall rules\n",
    ".github/instructions/ts.instructions.md":
        b"---\napplyTo: \"**/*.ts,**/*.tsx\"\n---\nts rules\n",
    ".github/instructions/review.instructions.md":
        b"---\napplyTo: \"**\"\nexcludeAgent: \"coding-agent\"\n---\nreview only\n",
    ".github/instructions/none.instructions.md": b"no front matter at all\n",
    ".github/instructions/README.md": b"not an instructions file",
}


def test_no_path_known_gives_the_root_files_and_what_applies_always():
    found = _gather(TREE)
    assert [s.path for s in found.sources] == [
        "AGENTS.md", "CLAUDE.md", COPILOT, ".github/instructions/all.instructions.md"]
    text = found.render("`main` at abc")
    assert "## `AGENTS.md` (at the root)" in text and "root rules" in text
    assert "web rules" not in text and "python rules" not in text and "review only" not in text
    assert "excludes the coding agent" in text and "no `applyTo`" in text
    assert "not commands" in text and "`main` at abc" in text


def test_the_nearest_agents_md_to_each_touched_path():
    found = _gather(TREE, ["web/ui/x.ts", "tools/a.py"])
    by_path = {s.path: s for s in found.sources}
    assert by_path["web/AGENTS.md"].why == "the nearest to `web/ui/x.ts`"
    assert by_path["AGENTS.md"].why == "the nearest to `tools/a.py`"
    assert "ts rules" in by_path[".github/instructions/ts.instructions.md"].text
    assert by_path[".github/instructions/ts.instructions.md"].why == \
        "applyTo: `**/*.ts, **/*.tsx`"
    assert "python rules" in by_path[".github/instructions/py.instructions.md"].text
    only_web = _gather(TREE, ["web/ui/x.ts"])
    assert "AGENTS.md" not in [s.path for s in only_web.sources]  # the nearer one wins
    assert "---" not in only_web.render()  # front matter is not shown


def test_nothing_gives_nothing():
    assert _gather({}).render() == ""
    assert _gather({"src/a.py": b"x"}, ["src/a.py"]).render() == ""


def test_caps_per_file_and_in_all_say_what_was_cut():
    big = b"a" * (MAX_FILE * 2)
    files = {"AGENTS.md": big, "CLAUDE.md": b"b" * (MAX_FILE * 2), COPILOT: b"c" * MAX_FILE,
             **{f".github/instructions/{i}.instructions.md":
                b"---\napplyTo: '**'\n---\n" + bytes([100 + i]) * 5000 for i in range(5)}}
    found = _gather(files)
    assert sum(len(s.text) for s in found.sources) <= MAX_TOTAL
    assert all(len(s.text) <= MAX_FILE for s in found.sources)
    text = found.render()
    assert f"`AGENTS.md`: cut to its first {MAX_FILE:,} of {MAX_FILE * 2:,} characters" in text
    assert "left out, over the" in text


def test_hostile_trees():
    files = {
        "AGENTS.md": ("link", "/etc/passwd"),
        "CLAUDE.md": ("link", "AGENTS.md"),  # a link to a link
        COPILOT: b"\x7fELF\x00\x00binary",
        ".github/instructions/bad.instructions.md": b"---\napplyTo: [unclosed\n---\nx\n",
        ".github/instructions/list.instructions.md": b"---\n- a\n- b\n---\nx\n",
        ".github/instructions/open.instructions.md": b"---\napplyTo: '**'\n" + b"x" * 5000,
        ".github/instructions/big.instructions.md": Unreadable("too large (9 bytes)"),
        ".github/instructions/ctl.instructions.md":
            b"---\napplyTo: '**'\n---\nok\x1b[31m red\x07\r\nline\n",
    }
    found = _gather(files)
    notes = "\n".join(found.notes)
    assert "`AGENTS.md`: a link out of the repository" in notes
    assert "`CLAUDE.md`: a link to AGENTS.md, which is not there" not in notes
    assert "`CLAUDE.md`: a link to a link" in notes
    assert f"`{COPILOT}`: a binary file" in notes
    assert "bad.instructions.md`: its front matter is not YAML" in notes
    assert "list.instructions.md`: its front matter is not a mapping" in notes
    assert "open.instructions.md`: its front matter is not closed" in notes
    assert "big.instructions.md`: too large" in notes
    [ctl] = found.sources
    assert ctl.text == "ok[31m red\nline\n"  # no escape or control characters reach a model


def test_a_link_inside_the_tree_is_followed_once_and_the_same_text_shown_once():
    files = {"AGENTS.md": b"shared rules", "CLAUDE.md": ("link", "AGENTS.md"),
             "docs/AGENTS.md": ("link", "../nowhere.md")}
    found = _gather(files, ["docs/x.md", "a.py"])
    assert [s.path for s in found.sources] == ["AGENTS.md"]
    notes = "\n".join(found.notes)
    assert "`CLAUDE.md`: the same text as `AGENTS.md`" in notes
    assert "`docs/AGENTS.md`: a link to nowhere.md, which is not there" in notes


def test_a_yaml_bomb_in_front_matter_stays_small():
    bomb = "---\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" \
           "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\napplyTo: [*c, *c]\n---\nrules\n"
    found = _gather({".github/instructions/b.instructions.md": bomb.encode()})
    assert found.sources == [] and "no `applyTo`" in found.notes[0]


# ------------------------------------------------------------------ from a real commit


def _git(repo, *args, stdin=None):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          input=stdin).stdout.decode().strip()


def _commit(repo, files, links=()):
    for path, data in files.items():
        p = repo / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for path, target in links:
        p = repo / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return _git(repo, "rev-parse", "HEAD")


async def test_read_from_a_commit_not_from_the_working_tree(tmp_path):
    repo = tmp_path / "r"
    _git(tmp_path, "init", "-q", str(repo))
    base = _commit(repo, {"AGENTS.md": b"base rules", "big/AGENTS.md": b"x" * 300_000,
                          **{f".github/instructions/{i}.instructions.md":
                             b"---\napplyTo: '**'\n---\nr%d\n" % i for i in range(3)},
                          "web/x.ts": b""},
                   links=[("CLAUDE.md", "AGENTS.md"), ("web/AGENTS.md", "/etc/passwd")])
    (repo / "AGENTS.md").write_text("changed in the working tree")
    tree = BaseTree(Git(), repo / ".git", base)
    touched = ["web/x.ts", "big/a", "a.py"]
    listing = await tree.fetch([*candidates(touched), "nothing.md"],
                               recursive=[".github/instructions"])
    found = gather(listing, tree.read, touched)
    text = found.render()
    assert "base rules" in text and "changed in the working tree" not in text
    assert "`web/AGENTS.md`: a link out of the repository" in text
    assert "`big/AGENTS.md`: too large (300,000 bytes" in text
    assert "r0" in text and "r2" in text
    assert "`CLAUDE.md`: the same text as `AGENTS.md`" in text
    assert tree.text("AGENTS.md", 100) == "base rules" and tree.text("CLAUDE.md", 100) is None


# ------------------------------------------------------------------ what executors get


def _job(tmp_path, **kw):
    from bzzz.exec.executor import Job
    fields = dict(task_id="o/r#1", repo="o/r", issue=1, title="T", body="do it", executor="agent",
                  options={}, code=None, workspace=tmp_path, output_dir=tmp_path,
                  feedback="", feedback_file=tmp_path / "feedback.md", env={}, read_only=[],
                  timeout=60)
    fields.update(kw)
    return Job(**fields)


def test_the_agent_executors_instructions_end_with_the_repositorys(tmp_path):
    from bzzz.exec.executor import instructions
    said = _gather(TREE).render("`main` at abc")
    text = instructions(_job(tmp_path, repo_instructions=said, feedback="fix the typo"))
    assert text.index("do it") < text.index("fix the typo") < text.index(
        "# The repository's own instructions") and "root rules" in text
    assert "repository's own" not in instructions(_job(tmp_path))


def test_the_llm_system_prompt_holds_them_within_a_third_of_the_context(tmp_path):
    from bzzz.exec.llmexec import DEFAULT_SYSTEM, system_prompt
    assert system_prompt(_job(tmp_path), 100) == (DEFAULT_SYSTEM, [])
    system, cut = system_prompt(_job(tmp_path, repo_instructions="rules " * 50), 1000)
    assert system.startswith(DEFAULT_SYSTEM) and system.endswith("rules") and cut == []
    system, cut = system_prompt(_job(tmp_path, repo_instructions="r" * 10_000,
                                     options={"system": "mine"}), 500)
    assert system.startswith("mine\n\n") and len(system) < 2100 and "(cut)" in system
    assert "past their first 1,960 characters (of 10,000" in cut[0]
