"""Malformed input: one clear line naming file, row (1-based) and column; exit 2; nothing written."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from alignscope.cli import main
from alignscope.data.preferences import load_preferences
from alignscope.data.readers import DataError


def jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


ANY_ROW = "any"  # where the stream breaks depends on the compressor; the row must still be named
OK = {"prompt": "Q?", "chosen": "Good answer.", "rejected": "Bad answer."}
HH_OK = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


def _parquet_bytes(tmp: Path) -> bytes:
    pd.DataFrame([OK]).to_parquet(tmp / "x.parquet")
    return (tmp / "x.parquet").read_bytes()


# (case id, file name, content (bytes or callable(tmp) -> bytes), row, column, reason fragment)
CASES = [
    ("missing-column", "a.jsonl", jsonl({"prompt": "Q", "chosen_response": "A", "rejected": "B"}),
     1, "chosen", "did you mean 'chosen_response'"),
    ("misnamed-rejected", "b.jsonl", jsonl({"prompt": "Q", "chosen": "A", "loser": "B"}),
     1, "rejected", "column not found"),
    ("empty-prompt", "c.jsonl", jsonl(OK, {**OK, "prompt": ""}), 2, "prompt", "empty string"),
    ("whitespace-prompt", "c2.jsonl", jsonl(OK, OK, {**OK, "prompt": "  \n "}), 3, "prompt", "empty string"),
    ("number-chosen", "d.jsonl", jsonl(OK, OK, {**OK, "chosen": 42}), 3, "chosen", "expected a string, got a number"),
    ("object-rejected", "d2.jsonl", jsonl({**OK, "rejected": {"text": "B"}}), 1, "rejected", "got a dict"),
    ("identical", "e.jsonl", jsonl(OK, {**OK, "rejected": OK["chosen"]}), 2, "rejected", "identical to 'chosen'"),
    ("no-assistant-marker", "f.jsonl", jsonl({"chosen": "Human: hi. Bot: yo", "rejected": "Human: hi. Bot: no"}),
     1, "chosen", "cannot extract the prompt"),
    ("json-null", "g.jsonl", jsonl(OK, {**OK, "rejected": None}), 2, "rejected", "missing value"),
    ("json-nan", "h.jsonl", jsonl(OK, '{"prompt": "Q", "chosen": NaN, "rejected": "B"}'), 2, "chosen", "missing value"),
    ("latin1-jsonl", "i.jsonl", jsonl(OK) + '{"prompt": "caf\xe9", "chosen": "A", "rejected": "B"}\n'.encode("latin-1"),
     2, None, "not valid UTF-8"),
    ("latin1-csv", "j.csv", "prompt,chosen,rejected\nQ,A,B\ncaf\xe9,A,B\n".encode("latin-1"), 2, None, "not valid UTF-8"),
    ("truncated-gzip", "k.jsonl.gz", gzip.compress(jsonl(*[OK] * 200))[:-40], ANY_ROW, None, "truncated"),
    ("not-gzip", "l.jsonl.gz", jsonl(OK), None, None, "not a valid gzip file"),
    ("empty-file", "m.jsonl", b"", None, None, "empty"),
    ("blank-lines-only", "n.jsonl", b"\n\n  \n", None, None, "empty (no rows)"),
    ("csv-header-only", "o.csv", b"prompt,chosen,rejected\n", None, None, "no rows"),
    ("mixed-standard-conversational", "p.jsonl",
     jsonl(OK, {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
                "rejected": [{"role": "assistant", "content": "B"}]}), 2, "prompt", "mixed standard and conversational"),
    ("mixed-explicit-implicit", "q.jsonl", jsonl(OK, HH_OK), 2, "prompt", "mixed explicit- and implicit-prompt"),
    ("row-too-large", "r.jsonl", jsonl(OK, {**OK, "chosen": "x" * 250_000}), 2, "chosen", "over the limit"),
    ("invalid-json", "s.jsonl", jsonl(OK, OK) + b'{"prompt": "Q", "chosen": \n', 3, None, "invalid JSON"),
    ("json-array-line", "t.jsonl", jsonl(OK, '["Q", "A", "B"]'), 2, None, "expected a JSON object"),
    ("unsupported-suffix", "u.txt", b"prompt\tchosen\trejected\n", None, None, "unsupported file type"),
    ("message-without-content", "v.jsonl",
     jsonl({"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant"}],
            "rejected": [{"role": "assistant", "content": "B"}]}), 1, "chosen", "needs 'role' and 'content'"),
    ("corrupt-parquet", "w.parquet", lambda tmp: _parquet_bytes(tmp)[:-30], None, None, "not a readable parquet"),
    ("json-not-array", "x.json", b'"just a string"', None, None, "expected a JSON array"),
]


def _write_case(tmp_path: Path, name: str, content) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(content(tmp_path) if callable(content) else content)
    return path


def _snapshot(*folders: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for f in folders for p in f.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_clear_line(tmp_path, case):
    _, name, content, row, column, fragment = case
    path = _write_case(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load_preferences(path)
    err = info.value
    message = str(err)
    assert "\n" not in message, message
    assert message.startswith(f"{name}: "), message
    assert fragment in message, message
    if row == ANY_ROW:
        assert isinstance(err.row, int) and err.row > 1 and f"row {err.row}" in message
    else:
        assert err.row == row
    assert err.column == column
    if row not in (None, ANY_ROW):
        assert f"row {row}" in message
    if column is not None:
        assert f"column '{column}'" in message


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_validate_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, isolated_home, case):
    _, name, content, _, _, fragment = case
    path = _write_case(tmp_path, name, content)
    before = _snapshot(tmp_path, isolated_home)
    assert main(["data", "validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alignscope: error: ") and fragment in lines[0]
    assert _snapshot(tmp_path, isolated_home) == before


def test_validate_json_reports_file_row_column(tmp_path, capsys):
    path = _write_case(tmp_path, "bad.jsonl", jsonl(OK, {**OK, "prompt": ""}))
    assert main(["data", "validate", str(path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert (report["file"], report["row"], report["column"]) == ("bad.jsonl", 2, "prompt")


def test_drop_invalid_reports_how_many_and_why(tmp_path):
    rows = [OK, {**OK, "prompt": ""}, {**OK, "rejected": OK["chosen"]}, OK, {**OK, "chosen": None}, {**OK, "prompt": ""}]
    path = _write_case(tmp_path, "some_bad.jsonl", jsonl(*rows))
    data = load_preferences(path, drop_invalid=True)
    assert data.n_pairs == 2
    report = data.report
    assert (report.n_read, report.n_kept, report.n_dropped) == (6, 2, 4)
    assert report.reasons() == {"empty string": 2, "identical to 'chosen'": 1, "missing value (null or NaN)": 1}
    assert [d["row"] for d in report.dropped] == [2, 3, 5, 6]
    assert "dropped 4 of 6 rows" in report.summary()


def test_drop_invalid_with_nothing_left_is_an_error(tmp_path):
    path = _write_case(tmp_path, "all_bad.jsonl", jsonl({**OK, "prompt": ""}, {**OK, "prompt": " "}))
    with pytest.raises(DataError, match="no valid rows"):
        load_preferences(path, drop_invalid=True)


def test_empty_responses_are_kept_and_counted(tmp_path):
    path = _write_case(tmp_path, "empty_reply.jsonl", jsonl(OK, {**OK, "rejected": ""}))
    data = load_preferences(path)
    assert data.n_pairs == 2
    assert data.report.warnings == {"rows with an empty rejected response": 1}


def test_max_row_chars_is_configurable(tmp_path):
    path = _write_case(tmp_path, "long.jsonl", jsonl({**OK, "chosen": "y" * 500}))
    assert load_preferences(path).n_pairs == 1
    with pytest.raises(DataError, match="over the limit of 100"):
        load_preferences(path, max_row_chars=100)


def test_bad_file_is_never_modified(tmp_path):
    path = _write_case(tmp_path, "keep_me.jsonl", jsonl(OK, {**OK, "prompt": ""}))
    content = path.read_bytes()
    with pytest.raises(DataError):
        load_preferences(path)
    assert path.read_bytes() == content and os.listdir(path.parent) == ["keep_me.jsonl"]
