"""devhub: a GitHub-compatible REST server, the embedded default and the test backend."""

from .server import DevHub, DevHubThread

__all__ = ["DevHub", "DevHubThread"]
