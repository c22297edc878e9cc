"""The one error tree (bzzz/errors.py): every exception class Bzzz defines derives from
BzzzError, and the classes that were ValueErrors or RuntimeErrors still are."""

import importlib
import inspect
import logging
import pkgutil

import pytest

import bzzz
from bzzz.errors import BzzzError, closing_quietly


def _modules():
    for info in pkgutil.walk_packages(bzzz.__path__, "bzzz."):
        if info.name.startswith("bzzz.testing") or info.name == "bzzz.__main__":
            continue
        yield importlib.import_module(info.name)


def _own_exceptions():
    for mod in _modules():
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if obj.__module__ == mod.__name__ and issubclass(obj, BaseException):
                yield obj


def test_every_error_class_is_in_the_tree():
    found = list(_own_exceptions())
    assert len(found) > 30
    outside = [f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, BzzzError)]
    assert outside == []


def test_one_name_one_class():
    names: dict[str, str] = {}
    for c in _own_exceptions():
        where = f"{c.__module__}.{c.__qualname__}"
        assert names.setdefault(c.__name__, where) == where, (c.__name__, names[c.__name__], where)


def test_the_old_bases_still_hold():
    from bzzz.claim.attempt import IllegalTransition
    from bzzz.claim.task import TaskError
    from bzzz.hyperlog.entries import EntryError
    from bzzz.p2p.patches import Libp2pPatchError
    assert issubclass(TaskError, ValueError) and issubclass(EntryError, ValueError)
    assert issubclass(IllegalTransition, RuntimeError)
    assert issubclass(Libp2pPatchError, RuntimeError)


def test_closing_quietly_swallows_only_exceptions(caplog):
    log = logging.getLogger("bzzz.test")
    with caplog.at_level(logging.DEBUG, "bzzz.test"):
        with closing_quietly(log, "a stream"):
            raise OSError("gone")
    assert "closing a stream: OSError" in caplog.text
    with pytest.raises(KeyboardInterrupt):
        with closing_quietly(log, "a stream"):
            raise KeyboardInterrupt
