"""The one redactor (bzzz/redact.py): registered secrets and well-known token shapes."""

from bzzz.redact import REDACTED, Redactor

GHP = "ghp_" + "A1b2C3d4E5" * 4
PAT = "github_pat_11ABCDEFG0" + "x" * 70
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
PSK = "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 32


def test_registered_secrets_in_every_spelling():
    r = Redactor()
    r.register("s3cr3t-token-value")
    r.register(bytes(range(32)))
    text = f"x s3cr3t-token-value y {bytes(range(32)).hex()} z {bytes(range(32)).hex().upper()}"
    out = r(text)
    assert "s3cr3t" not in out and bytes(range(32)).hex() not in out.lower()
    assert out.count(REDACTED) == 3


def test_short_values_are_not_registered():
    r = Redactor()
    r.register("abc")
    assert r("abc abc") == "abc abc"


def test_well_known_shapes_whoever_owns_them():
    r = Redactor()
    for secret in (GHP, PAT, PEM, PSK, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIz",
                   "ghs_" + "z" * 36):
        out = r(f"before {secret} after")
        assert secret not in out and REDACTED in out, secret
        assert out.startswith("before ") and out.endswith(" after")


def test_bearer_and_token_headers():
    r = Redactor()
    assert "abcdefghijklmnop0123" not in r("Authorization: Bearer abcdefghijklmnop0123")
    assert "0123456789abcdef0123456789abcdef" not in r("token 0123456789abcdef0123456789abcdef")


def test_ordinary_text_is_left_alone():
    r = Redactor()
    text = "make test passed in 3.2 s; see ghp_short and token rotation docs"
    assert r(text) == text


def test_structures_are_redacted_everywhere():
    r = Redactor()
    r.register("hunter2hunter2")
    doc = {"a": ["x hunter2hunter2", ("hunter2hunter2",)], "hunter2hunter2": 1, "n": 5}
    out = r.value(doc)
    assert "hunter2hunter2" not in repr(out) and out["n"] == 5


def test_longest_secret_wins():
    r = Redactor()
    r.register("abcdefgh")
    r.register("abcdefgh-ijkl")
    assert r("abcdefgh-ijkl") == REDACTED
