"""devhub's ``POST /graphql``: the one mutation GitHub offers only through GraphQL that Bzzz
uses, ``markPullRequestReadyForReview(input: {pullRequestId})`` (a draft pull request
becomes ready for review; GitHub's REST API cannot do it).

Answered as GitHub does: HTTP 200 with ``{"data": ...}``, or ``{"errors": [...]}`` with
GitHub's shapes (a field that does not exist, a node id that resolves to nothing, a missing
permission). Anything else (a query, another mutation) gets a GraphQL error saying devhub
serves only this mutation. :func:`parse` is a small parser of GraphQL's operation syntax
(names, arguments with variables, strings, nested selections); no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

MUTATION = "markPullRequestReadyForReview"
_TOKEN = re.compile(r'\s+|,|#[^\n]*|"(?:[^"\\]|\\.)*"|\.\.\.|[{}()\[\]:!$=@]|'
                    r'-?\d+(?:\.\d+)?|[_A-Za-z][_0-9A-Za-z]*')


class GraphQLError(InputError):
    """A request GitHub answers with ``errors`` (the message, and GitHub's ``type``): bad
    input from the client, in bzzz/errors.py's tree."""

    def __init__(self, message: str, kind: str | None = None,
                 path: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.path = message, kind, path

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.kind:
            out["type"] = self.kind
        if self.path:
            out["path"] = self.path
        return out


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list["Field"] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise GraphQLError(f"Parse error on {text[pos]!r}")
            pos = m.end()
            token = m.group(0)
            if token.strip() and token != "," and not token.startswith("#"):
                self.tokens.append(token)
        self.i, self.variables = 0, variables

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise GraphQLError(f"Parse error on {token or 'end of input'!r}"
                               + (f" (expected {expected!r})" if expected else ""))
        self.i += 1
        return token

    def operation(self) -> tuple[str, list[Field]]:
        kind = "query"
        if self.peek() in ("query", "mutation", "subscription"):
            kind = self.take()
            if self.peek() not in ("{", "(", None):
                self.take()  # the operation's name
            if self.peek() == "(":
                self._skip_group("(", ")")  # variable definitions: values come in variables
        fields = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("devhub answers one operation per request")
        return kind, fields

    def _skip_group(self, start: str, end: str) -> None:
        depth = 0
        while True:
            token = self.take()
            depth += token == start
            depth -= token == end
            if depth == 0:
                return

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        name = self.take()
        alias = name
        if self.peek() == ":":
            self.take()
            name = self.take()
        if not re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]*", name):
            raise GraphQLError(f"Parse error on {name!r}")
        args = {}
        if self.peek() == "(":
            self.take()
            while self.peek() != ")":
                key = self.take()
                self.take(":")
                args[key] = self.value()
            self.take(")")
        selections = self.selection_set() if self.peek() == "{" else []
        return Field(name, alias, args, selections)

    def value(self) -> Any:
        token = self.take()
        if token == "$":
            return self.variables.get(self.take())
        if token.startswith('"'):
            return re.sub(r"\\(.)", r"\1", token[1:-1])
        if token == "{":
            obj = {}
            while self.peek() != "}":
                key = self.take()
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        if token == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        return {"true": True, "false": False, "null": None}.get(token, token)


def parse(query: Any, variables: Any) -> Field:
    """The ``markPullRequestReadyForReview`` field of a request (GraphQLError otherwise)."""
    if not isinstance(query, str) or not query.strip():
        raise GraphQLError("A query attribute must be specified and must be a string.")
    kind, fields = _Parser(query, variables if isinstance(variables, dict) else {}).operation()
    if kind != "mutation" or len(fields) != 1 or fields[0].name != MUTATION:
        raise GraphQLError(f"devhub serves only the mutation {MUTATION}", "NOT_SUPPORTED")
    mutation = fields[0]
    given = mutation.args.get("input")
    if not isinstance(given, dict) or not isinstance(given.get("pullRequestId"), str):
        raise GraphQLError("Argument 'input' on Field 'markPullRequestReadyForReview' has an "
                           "invalid value. Expected type 'MarkPullRequestReadyForReviewInput!'.",
                           "argumentLiteralsIncompatible", [MUTATION])
    return mutation


def select(fields: list[Field], values: dict[str, Any], type_name: str,
           path: list[str]) -> dict[str, Any]:
    """The selected fields of an object (``values``: field -> value, or a nested pair of
    (type name, values)); GitHub's error for a field the type does not have."""
    out: dict[str, Any] = {}
    for f in fields:
        if f.name == "__typename":
            out[f.alias] = type_name
            continue
        if f.name not in values:
            raise GraphQLError(f"Field '{f.name}' doesn't exist on type '{type_name}'",
                               "undefinedField", path + [f.name])
        value = values[f.name]
        if isinstance(value, tuple):
            nested_type, nested = value
            out[f.alias] = None if nested is None else select(
                f.selections, nested, nested_type, path + [f.alias])
        else:
            out[f.alias] = value
    return out


def pull_request_id(node: str) -> int | None:
    """The pull request id inside devhub's node id (render.py ``node_id``), or None."""
    import base64
    import binascii

    try:
        text = base64.b64decode(node + "=" * (-len(node) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    kind, _, ident = text.partition(":")
    return int(ident) if kind == "PullRequest" and ident.isdigit() else None
