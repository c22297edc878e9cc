"""The node's Ed25519 identity, kept in ``data_dir``.

The key file holds the libp2p protobuf encoding of the private key (the format go- and
js-libp2p use). It is created with mode 0600 on first use and never silently replaced: a key
file that cannot be read back as an Ed25519 key is an error, because a new key would be a new
peer id and a new log key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError
from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType, PrivateKey
from libp2p.peer.id import ID

from .errors import SetupError
from .fsutil import fsync_dir, write_synced

KEY_FILE = "identity.key"


class IdentityError(SetupError):
    """The identity key is unreadable, corrupt or unsafe."""


@dataclass(frozen=True)
class Identity:
    key_pair: KeyPair
    path: Path

    @property
    def peer_id(self) -> ID:
        return ID.from_pubkey(self.key_pair.public_key)

    @property
    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed (for signers outside libp2p, such as the log)."""
        return self.key_pair.private_key.to_bytes()[:32]

    @property
    def public_key_bytes(self) -> bytes:
        return self.key_pair.public_key.to_bytes()


def _decode(data: bytes, path: Path) -> KeyPair:
    try:
        proto = PrivateKey.deserialize_from_protobuf(data)
    except DecodeError:
        raise IdentityError(f"{path}: corrupt identity key (not a libp2p private key)") from None
    if proto.key_type != KeyType.Ed25519.value:
        raise IdentityError(f"{path}: identity key is not Ed25519")
    raw = bytes(proto.data)
    if len(raw) not in (32, 64):
        raise IdentityError(f"{path}: corrupt identity key ({len(raw)} key bytes)")
    try:
        private = Ed25519PrivateKey.from_bytes(raw[:32])
    except ValueError:  # nacl refuses the seed
        raise IdentityError(f"{path}: corrupt identity key") from None
    public = private.get_public_key()
    if len(raw) == 64 and raw[32:] != public.to_bytes():
        raise IdentityError(f"{path}: corrupt identity key (public half does not match)")
    return KeyPair(private, public)


def load_or_create(data_dir: str | os.PathLike[str]) -> Identity:
    """Load the identity in ``data_dir``, creating it (mode 0600) if there is none."""
    directory = Path(data_dir)
    path = directory / KEY_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityError(f"{directory}: cannot create data directory ({exc.strerror})") from None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _create(path)
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read identity key ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        data = fh.read(4096)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, 0o600)
    return Identity(_decode(data, path), path)


def _create(path: Path) -> Identity:
    key_pair = create_new_key_pair()
    data = key_pair.private_key.serialize()
    tmp = path.with_name(path.name + ".tmp")
    write_synced(tmp, data, 0o600)
    try:
        # link() fails if another process created the key meanwhile: then use theirs.
        os.link(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        return load_or_create(path.parent)
    os.unlink(tmp)
    fsync_dir(path.parent)
    return Identity(key_pair, path)
