import os
import stat

import pytest

from bzzz.identity import KEY_FILE, IdentityError, load_or_create


def test_created_0600_and_stable(tmp_path):
    first = load_or_create(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600
    again = load_or_create(tmp_path)
    assert again.peer_id == first.peer_id
    assert first.peer_id.to_base58().startswith("12D3KooW")  # Ed25519 identity
    assert len(first.seed) == 32


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 10, b"hello world", b"\x08\x01\x12\x05abcde"])
def test_corrupt_key_is_an_error_never_replaced(tmp_path, garbage):
    (tmp_path / KEY_FILE).write_bytes(garbage)
    with pytest.raises(IdentityError, match="corrupt|not Ed25519"):
        load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).read_bytes() == garbage


def test_truncated_key_is_an_error(tmp_path):
    load_or_create(tmp_path)
    data = (tmp_path / KEY_FILE).read_bytes()
    (tmp_path / KEY_FILE).write_bytes(data[:-5])
    with pytest.raises(IdentityError):
        load_or_create(tmp_path)


def test_loose_permissions_are_tightened(tmp_path):
    load_or_create(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    load_or_create(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
