"""Atomic writes and data-root confinement."""
from __future__ import annotations

import pytest

from alignscope.files import PathOutsideRootError, atomic_path, atomic_write, resolve_in_root, write_json


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"


def test_atomic_path_and_write_json(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "a" / "b.json", {"k": 1})
    assert (tmp_path / "a" / "b.json").read_text().strip() == '{\n  "k": 1\n}'


def test_resolve_in_root_allows_inside_and_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.jsonl").write_text("{}")
    assert resolve_in_root(root, "sub/f.jsonl") == (root / "sub" / "f.jsonl").resolve()
    assert resolve_in_root(root, str(root / "sub")) == (root / "sub").resolve()
    (root / "escape").symlink_to(tmp_path)
    (root / "inner").symlink_to(root / "sub")
    assert resolve_in_root(root, "inner/f.jsonl") == (root / "sub" / "f.jsonl").resolve()
    for bad in ["../x", "sub/../../x", "/etc/passwd", "escape/other.jsonl", "escape", "", "a\x00b"]:
        with pytest.raises(PathOutsideRootError):
            resolve_in_root(root, bad)


def test_atomic_writes_leave_ordinary_permissions(tmp_path):
    """A file written atomically gets what open() would give it (umask applied), not mkstemp's 0600."""
    import os

    from alignscope.files import atomic_path, write_json

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.parquet") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(previous)
    for name in ("a.json", "b.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
