"""hyperlog: a signed, append-only log, byte-compatible with Hypercore 11's tree and heads.

- ``flat``: flat-tree index arithmetic; ``crypto``: Hypercore's hashes, manifest, key and
  signed bytes; ``tree``: the Merkle tree core (no I/O).
- ``store``: the files in a log directory, group commit, crash recovery, verification.
- ``entries``: what a Bzzz log holds (msgpack maps, large fields by hash).
"""
