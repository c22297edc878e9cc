from pathlib import Path

import pytest

from bzzz.config import ConfigError, load_config


def test_defaults_match_the_contract():
    c = load_config(env={})
    assert c.data_dir == Path("./data")
    assert c.listen == ["/ip4/0.0.0.0/tcp/4001"]
    assert c.api_listen == "127.0.0.1:8090"
    assert c.mdns is True and c.bootstrap == [] and c.psk_file is None
    assert c.capabilities is None
    assert c.github.url == "https://api.github.com" and c.github.repos == []
    assert c.announce_interval == 5.0 and c.node_id


def test_toml_then_env_override(tmp_path):
    f = tmp_path / "bzzz.toml"
    f.write_text('node_id = "n1"\nmdns = false\n[github]\nrepos = ["a/b"]\nurl = "http://x"\n')
    c = load_config(f, env={"BZZZ_GITHUB__URL": "http://devhub:1", "BZZZ_MDNS": "on"})
    assert c.node_id == "n1"
    assert c.mdns is True
    assert c.github.url == "http://devhub:1"
    assert c.github.repos == ["a/b"]


@pytest.mark.parametrize("value", ['acme/widgets,acme/tools', '["acme/widgets", "acme/tools"]',
                                   ' acme/widgets , acme/tools '])
def test_list_from_env_json_or_commas(value):
    c = load_config(env={"BZZZ_GITHUB__REPOS": value})
    assert c.github.repos == ["acme/widgets", "acme/tools"]


@pytest.mark.parametrize("text,expected", [("on", True), ("off", False), ("true", True),
                                           ("false", False), ("1", True), ("0", False)])
def test_switches(text, expected):
    assert load_config(env={"BZZZ_MDNS": text}).mdns is expected


def test_delivery_protected_paths_and_the_repositories_allowed():
    c = load_config(env={})
    assert c.delivery_protected_paths == [".github/workflows/**"]
    assert c.delivery_allow_protected == []
    c = load_config(env={"BZZZ_DELIVERY_PROTECTED_PATHS": '[".github/**", "/Makefile"]',
                         "BZZZ_DELIVERY_ALLOW_PROTECTED": "acme/ci,acme/tools"})
    assert c.delivery_protected_paths == [".github/**", "Makefile"]
    assert c.delivery_allow_protected == ["acme/ci", "acme/tools"]


def test_github_token_file_env(tmp_path):
    c = load_config(env={"GITHUB_TOKEN_FILE": str(tmp_path / "t")})
    assert c.github.token_file == tmp_path / "t"


@pytest.mark.parametrize("env,field", [
    ({"BZZZ_MDNS": "maybe"}, "mdns"),
    ({"BZZZ_LISTEN": "not-a-multiaddr"}, "listen"),
    ({"BZZZ_API_LISTEN": "8090"}, "api_listen"),
    ({"BZZZ_GITHUB__REPOS": "noslash"}, "github.repos"),
    ({"BZZZ_DELIVERY_ALLOW_PROTECTED": "noslash"}, "delivery_allow_protected"),
    ({"BZZZ_DELIVERY_PROTECTED_PATHS": '["/"]'}, "delivery_protected_paths"),
    ({"BZZZ_ANNOUNCE_INTERVAL": "-1"}, "announce_interval"),
    ({"BZZZ_BOGUS": "1"}, "bogus"),
    ({"BZZZ_NODE_ID": "bad\rname"}, "node_id"),
])
def test_bad_values_name_the_field(env, field):
    with pytest.raises(ConfigError) as err:
        load_config(env=env)
    text = str(err.value)
    assert text.startswith(field) and "\n" not in text
    assert "BZZZ_" in text  # says which variable it came from


def test_bad_toml_is_one_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("node_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", env={})
