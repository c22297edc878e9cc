"""The task gateway: a task's only way out (docs/gateway.md).

``allow.py`` (the allowlist and its presets) and ``policy.py`` (which addresses may be dialled,
one task's account) are cores without I/O; ``proxy.py`` is the node's forward proxy, one Unix
socket per task; ``forwarder.py`` runs inside a sandbox and offers that socket on the
sandbox's loopback.
"""
