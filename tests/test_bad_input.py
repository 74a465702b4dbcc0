"""The bad-input corpus: malformed data files, selection files, embeddings, command-line values and
app form values. Every case must give ONE clear line (naming file, row and column where they
apply), exit code 2 on the CLI or an error box in the app, no traceback, and nothing written or
overwritten: each CLI case runs with --out pointing at a file whose bytes are checked afterwards,
and the output folder must hold no new or temporary files."""
from __future__ import annotations

import gzip
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignscope.cli import main
from conftest import ROOT, STANDARD_ROWS, write_jsonl

GOOD = STANDARD_ROWS * 4  # 12 valid rows


def jsonl(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def with_row(index: int, **change) -> bytes:
    rows = [dict(r) for r in GOOD]
    rows[index].update(change)
    return jsonl(rows)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


MATRIX = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
NAN = MATRIX.copy()
NAN[7, 3] = np.nan
INF = MATRIX.copy()
INF[12, 0] = np.inf

# id: (files to create {name: bytes}, argv (FILE = the tmp folder), expected message fragments)
DATA_FILES = {
    "empty-file": ({"d.jsonl": b""}, ["data", "validate", "{d}/d.jsonl"], ["d.jsonl"]),
    "invalid-json-row": ({"d.jsonl": jsonl(GOOD[:2] + ['{"prompt": "x", "chosen": ']) }, ["data", "validate", "{d}/d.jsonl"],
                         ["d.jsonl", "row 3"]),
    "missing-column": ({"d.jsonl": jsonl([{k: v for k, v in r.items() if k != "rejected"} for r in GOOD])},
                       ["data", "validate", "{d}/d.jsonl"], ["d.jsonl", "rejected"]),
    "wrong-type-number": ({"d.jsonl": with_row(4, chosen=42)}, ["data", "validate", "{d}/d.jsonl"],
                          ["d.jsonl", "row 5", "chosen"]),
    "wrong-type-null": ({"d.jsonl": with_row(2, prompt=None)}, ["data", "validate", "{d}/d.jsonl"],
                        ["d.jsonl", "row 3", "prompt"]),
    "row-is-a-list": ({"d.jsonl": jsonl(GOOD[:3] + ['["a", "b", "c"]'])}, ["data", "validate", "{d}/d.jsonl"],
                      ["d.jsonl", "row 4"]),
    "non-utf8": ({"d.jsonl": jsonl(GOOD[:2]) + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'},
                 ["data", "validate", "{d}/d.jsonl"], ["d.jsonl", "UTF-8"]),
    "truncated-gzip": ({"d.jsonl.gz": gzip.compress(jsonl(GOOD * 50))[:300]}, ["data", "validate", "{d}/d.jsonl.gz"],
                       ["d.jsonl.gz"]),
    "truncated-parquet": ({"d.parquet": parquet_bytes(pd.DataFrame(GOOD))[:200]}, ["data", "validate", "{d}/d.parquet"],
                          ["d.parquet"]),
    "csv-missing-column": ({"d.csv": b"prompt,chosen\nq,a\n"}, ["data", "validate", "{d}/d.csv"], ["d.csv", "rejected"]),
    "json-not-a-list": ({"d.json": b'{"prompt": "q"}'}, ["data", "validate", "{d}/d.json"], ["d.json"]),
    "huge-row": ({"d.jsonl": with_row(1, chosen="x" * 300_000)}, ["data", "validate", "{d}/d.jsonl", "--max-row-chars",
                                                                   "100000"], ["d.jsonl", "row 2"]),
    "unknown-extension": ({"d.txt": b"hello"}, ["data", "validate", "{d}/d.txt"], ["unsupported file type", ".txt"]),
    "missing-file": ({}, ["data", "validate", "{d}/nothing.jsonl"], ["nothing.jsonl"]),
    "directory-not-a-data-set": ({"sub/x.txt": b"x"}, ["data", "validate", "{d}/sub"], ["sub"]),
    "all-rows-identical-pair": ({"d.jsonl": with_row(0, rejected="4.")}, ["data", "validate", "{d}/d.jsonl"],
                                ["row 1"]),
}
SELECTION_AND_EMBEDDINGS = {
    "selection-garbage-bytes": ({"d.jsonl": jsonl(GOOD), "s.parquet": b"not a parquet file"},
                                ["export", "{d}/d.jsonl", "{d}/s.parquet", "--out", "{out}"], ["s.parquet"]),
    "selection-missing-columns": ({"d.jsonl": jsonl(GOOD), "s.parquet": parquet_bytes(pd.DataFrame({"x": [1, 2]}))},
                                  ["export", "{d}/d.jsonl", "{d}/s.parquet", "--out", "{out}"], ["s.parquet"]),
    "selection-rows-out-of-range": ({"d.jsonl": jsonl(GOOD),
                                     "s.parquet": parquet_bytes(pd.DataFrame({"index": [0, 99], "selected": [True, True]}))},
                                    ["export", "{d}/d.jsonl", "{d}/s.parquet", "--out", "{out}"], ["s.parquet"]),
    "embeddings-nan": ({"e.npy": npy_bytes(NAN)}, ["select", "--embeddings", "{d}/e.npy", "--k", "5", "--out", "{out}"],
                       ["e.npy", "row 7"]),
    "embeddings-inf": ({"e.npy": npy_bytes(INF)}, ["select", "--embeddings", "{d}/e.npy", "--k", "5", "--out", "{out}"],
                       ["e.npy", "row 12"]),
    "embeddings-1d": ({"e.npy": npy_bytes(MATRIX[:, 0])}, ["select", "--embeddings", "{d}/e.npy", "--k", "5", "--out",
                                                           "{out}"], ["e.npy"]),
    "embeddings-pickled-objects": ({"e.npy": npy_bytes(np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)},
                                   ["select", "--embeddings", "{d}/e.npy", "--k", "1", "--out", "{out}"], ["e.npy"]),
    "embeddings-not-npy": ({"e.npy": pickle.dumps([1, 2, 3])}, ["select", "--embeddings", "{d}/e.npy", "--k", "1",
                                                                "--out", "{out}"], ["e.npy"]),
}
ARGUMENTS = {
    "k-larger-than-n": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--k", "41", "--out",
                                                      "{out}"], ["41", "40"]),
    "k-zero": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--k", "0", "--out", "{out}"], ["k"]),
    "fraction-zero": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--fraction", "0", "--out",
                                                    "{out}"], ["--fraction", "(0, 1]"]),
    "fraction-above-one": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--fraction", "1.5",
                                                         "--out", "{out}"], ["--fraction", "(0, 1]"]),
    "fraction-not-a-number": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--fraction", "half",
                                                            "--out", "{out}"], ["--fraction", "half"]),
    "unknown-method": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--method", "best", "--k",
                                                     "3", "--out", "{out}"], ["best"]),
    "unknown-model": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--model", "gpt-17-secret", "--out",
                                                 "{d}/run"], ["gpt-17-secret"]),
    "model-folder-missing": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--model", "./no/such/model", "--out",
                                                        "{d}/run"], ["does not exist"]),
    "train-out-is-a-file": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--out", "{out}"], ["is a file"]),
    "unknown-encoder": ({"d.jsonl": jsonl(GOOD)}, ["embed", "{d}/d.jsonl", "--encoder", "nope-encoder", "--out",
                                                   "{d}/e.npy"], ["nope-encoder"]),
    "negative-beta": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--beta", "-1", "--out", "{d}/run"], ["beta"]),
    "zero-batch-size": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--batch-size", "0", "--out", "{d}/run"],
                        ["batch_size"]),
    "label-noise-one": ({"d.jsonl": jsonl(GOOD)}, ["train", "{d}/d.jsonl", "--label-noise", "1", "--out", "{d}/run"],
                        ["label_noise"]),
    "unknown-data-spec": ({}, ["data", "info", "demo:lots"], ["demo:lots"]),
    "scaling-q-out-of-range": ({"p.csv": b"fraction,score\n0.1,0.5\n0.5,0.6\n1,0.7\n"},
                               ["scaling", "fit", "{d}/p.csv", "--q", "1.5"], ["--q"]),
    "scaling-csv-bad-cell": ({"p.csv": b"fraction,score\n0.1,0.5\n0.5,high\n1,0.7\n"}, ["scaling", "fit", "{d}/p.csv"],
                             ["p.csv", "row 2", "score"]),
    "app-data-root-missing": ({}, ["app", "--data-root", "{d}/no-such-folder"], ["--data-root"]),
    "output-exists-without-force": ({"e.npy": npy_bytes(MATRIX)}, ["select", "--embeddings", "{d}/e.npy", "--k", "3",
                                                                  "--out", "{out}"], ["exists"]),
}
CASES = {**DATA_FILES, **SELECTION_AND_EMBEDDINGS, **ARGUMENTS}


def test_the_corpus_has_at_least_30_cases():
    assert len(CASES) + len(APP_CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, isolated_home, capsys):
    files, argv, fragments = CASES[case]
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    for name, content in files.items():
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(content)
    existing = outputs / "result.parquet"  # what a careless writer would clobber
    existing.write_bytes(b"the user's earlier result")
    args = [a.format(d=inputs, out=existing) for a in argv]
    if "--force" not in args and case != "output-exists-without-force" and "--out" in args:
        args.append("--force")  # so that only the bad input can stop the command
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, (case, code, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("alignscope: error:") or "usage:" in err, (case, err)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (case, fragment, err)
    assert existing.read_bytes() == b"the user's earlier result"
    assert sorted(p.name for p in outputs.iterdir()) == ["result.parquet"], case
    assert sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*") if p.is_file()) == sorted(files), case


# ---------------------------------------------------------------------------------------- app
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(ROOT / "app" / "main.py")
APP_CASES = {
    "path-outside-root": ("../outside.jsonl", "outside the data root"),
    "absolute-path-elsewhere": ("/etc/passwd", "outside the data root"),
    "path-to-malformed-file": ("bad.jsonl", "row 2"),
    "path-empty": ("   ", "type a path"),
}


@pytest.mark.parametrize("case", sorted(APP_CASES))
def test_app_form_values_give_an_error_box_and_keep_the_active_data(case, tmp_path, monkeypatch):
    typed, fragment = APP_CASES[case]
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.jsonl").write_bytes(jsonl(GOOD))
    (root / "bad.jsonl").write_bytes(jsonl(GOOD[:1]) + b'{"prompt": 1}\n')
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:50")
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.radio(key="data_source_kind").set_value("Path in the data root").run()
    at.text_input(key="data_path").set_value(typed)
    next(b for b in at.button if b.label == "Load path").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert fragment in errors, (case, errors)
    assert next(m.value for m in at.metric if m.label == "Pairs") == "50"  # the demo set is still active
    assert sorted(p.name for p in root.iterdir()) == ["bad.jsonl"]
