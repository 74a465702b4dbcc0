"""One type for embeddings, and one file format for them.

:class:`Embeddings` is what every embedding function returns (:func:`alignscope.embed.encoders.embed`,
:func:`alignscope.embed.ray.embed_ray`), what the embedding cache, the ``embed`` job and the
``alignscope embed`` command write, and what the pages, ``select --embeddings`` and the map job read:
a float32 matrix ``(n, d)`` plus what its rows are (unit, pair of each row, chosen/rejected label,
encoder, data fingerprint).

On disk, ``PATH`` is a plain ``.npy`` (float32, 2-D, no pickle: read with ``allow_pickle=False``)
and ``PATH.json`` beside it (``emb.npy`` → ``emb.npy.json``) says what the rows are::

    {"format": "alignscope-embeddings", "version": 1, "shape": [n, d], "dtype": "float32",
     "n": n, "dim": d, "encoder": "minilm", "unit": "completion", "layer": null,
     "fingerprint": "…", "precision": "fp32", "max_length": 256, "from_cache": false, …extra}

``pair_index``/``label`` are stored only when they differ from alignscope's layout (unit
``completion``: ``2N`` rows, chosen completions of pairs ``0..N-1`` then the rejected ones; unit
``pair``: row ``i`` is pair ``i``), so the sidecar stays a few hundred bytes. The ``.npy`` alone is
what other tools read; a ``.npy`` made elsewhere (no sidecar) loads too, as rows whose unit, encoder
and data are unknown unless the caller says (``Embeddings.load(path, unit=...)``).

Writes are atomic (:mod:`alignscope.files`) and ordered: the old sidecar is removed, the matrix
written, the new sidecar written last, so a sidecar never describes a matrix it was not written with.
Files of earlier alignscope versions still load: the embedding cache's ``<key>.npy`` + ``<key>.json``
(``{"key", "shape", "dtype"}``) and the ``embed`` job's ``embeddings.npy`` + ``embeddings.json``
(beside ``pair_index.npy``/``label.npy``, which always held the layout above).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from alignscope.errors import AlignscopeError
from alignscope.files import atomic_path, write_json
from alignscope.options import is_int

__all__ = ["Embeddings", "EmbeddingError", "UNITS", "FORMAT", "FORMAT_VERSION", "completion_layout",
           "pair_vectors", "sidecar_path", "validated_matrix"]

UNITS = ("completion", "pair")
FORMAT = "alignscope-embeddings"
FORMAT_VERSION = 1
_INFO_KEYS = ("n", "dim", "encoder", "unit", "layer", "fingerprint", "precision", "max_length", "from_cache")
_RESERVED = frozenset({"format", "version", "shape", "dtype", "pair_index", "label", *_INFO_KEYS})


class EmbeddingError(AlignscopeError):
    """Bad encoder name, unit, layer or embedding file; the message is one line."""


# ------------------------------------------------------------------------------------------ layout
def completion_layout(n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pair_index, label)`` of alignscope's completion unit for ``n_pairs`` pairs: int64 and int8,
    shape ``(2N,)``; rows ``0..N-1`` are the chosen completions (label 1), ``N..2N-1`` the rejected."""
    return (np.tile(np.arange(n_pairs, dtype=np.int64), 2),
            np.concatenate([np.ones(n_pairs, np.int8), np.zeros(n_pairs, np.int8)]))


def pair_vectors(completion_matrix: np.ndarray) -> np.ndarray:
    """``(2N, d)`` completion embeddings (chosen rows then rejected rows) → ``(N, 2d)`` pair rows
    ``[(c + r) / 2, c - r]`` (see :mod:`alignscope.embed.encoders` for why)."""
    n = len(completion_matrix) // 2
    chosen, rejected = completion_matrix[:n], completion_matrix[n:]
    return np.concatenate([(chosen + rejected) / 2, chosen - rejected], axis=1).astype(np.float32)


def _standard_layout(unit: str | None, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if unit == "completion":
        if n % 2:
            raise EmbeddingError(f"unit 'completion' needs 2N rows (chosen then rejected), got {n}")
        return completion_layout(n // 2)
    if unit == "pair":
        return np.arange(n, dtype=np.int64), None
    return None, None


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


# ------------------------------------------------------------------------------------------ result
@dataclass(frozen=True)
class Embeddings:
    """Embedding matrix with what each row is.

    ``matrix``: float32, shape ``(n, d)``; ``n = 2N`` for ``unit="completion"``, ``N`` for ``"pair"``.
    ``pair_index``: int64, shape ``(n,)``, the pair (row of the canonical data) each row belongs to,
    or ``None`` for a matrix made elsewhere whose unit is unknown (``unit=None``).
    ``label``: int8, shape ``(n,)``, 1 chosen / 0 rejected; ``None`` for ``unit="pair"`` (and unknown).
    ``encoder``: the encoder's name (``None``: unknown, a matrix made elsewhere).
    ``layer``: hidden-state index for ``lm-last-token`` encoders (resolved, non-negative), else None.
    ``fingerprint``: the data's fingerprint (:attr:`PreferenceData.fingerprint`), or None if unknown.
    ``from_cache``: read from a file (the cache or :meth:`load`) rather than computed.
    ``extra``: further metadata kept in the sidecar (the data spec, the cache key, …).
    ``path``: the ``.npy`` it was read from or last saved to (None when only in memory).
    """

    matrix: np.ndarray
    pair_index: np.ndarray | None
    label: np.ndarray | None
    encoder: str | None
    unit: str | None
    layer: int | None
    fingerprint: str | None
    precision: str | None = "fp32"
    max_length: int | None = None
    from_cache: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.matrix, np.ndarray) or self.matrix.ndim != 2:
            raise EmbeddingError(f"embeddings must be a 2-D array (rows x dims), got "
                                 f"{getattr(self.matrix, 'shape', type(self.matrix).__name__)}")
        if self.unit not in (None, *UNITS):
            raise EmbeddingError(f"unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        n = len(self.matrix)
        if self.unit == "pair" and self.label is not None:
            raise EmbeddingError("unit 'pair' takes no label (labels belong to completions)")
        if self.unit is not None and self.pair_index is None:
            raise EmbeddingError(f"unit {self.unit!r} needs pair_index")
        for name in ("pair_index", "label"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (n,):
                raise EmbeddingError(f"{name} must have shape ({n},), got {np.shape(value)}")

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_matrix(cls, matrix: np.ndarray, unit: str | None, **info: Any) -> "Embeddings":
        """Rows in alignscope's layout for ``unit`` (see :func:`completion_layout`); ``unit=None``:
        rows whose pairs are unknown. ``info``: the other fields (encoder, fingerprint, …)."""
        if unit not in (None, *UNITS):
            raise EmbeddingError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        matrix = np.asarray(matrix)
        if matrix.dtype.kind == "f" and matrix.dtype != np.float32:
            matrix = matrix.astype(np.float32)
        pair_index, label = _standard_layout(unit, len(matrix))
        fields = {"encoder": None, "layer": None, "fingerprint": None, **info}
        return cls(matrix, pair_index, label, unit=unit, **fields)

    def to_unit(self, unit: str) -> "Embeddings":
        """The same embeddings in ``unit``: ``"pair"`` from completion rows is ``[(c + r) / 2, c - r]``
        (:func:`pair_vectors`); the unit it already has returns ``self``."""
        if unit not in UNITS:
            raise EmbeddingError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        if unit == self.unit:
            return self
        if self.unit != "completion" or unit != "pair":
            raise EmbeddingError(f"cannot turn {self.unit or 'unknown'}-unit embeddings into unit {unit!r}")
        if not self.has_standard_layout():
            raise EmbeddingError("pair rows need completion rows in alignscope's layout (chosen then rejected)")
        n_pairs = len(self) // 2
        return dataclasses.replace(self, matrix=pair_vectors(self.matrix), pair_index=np.arange(n_pairs, dtype=np.int64),
                                   label=None, unit="pair", extra={}, path=None)

    # ------------------------------------------------------------------------------- description
    def __repr__(self) -> str:
        return (f"Embeddings(n={len(self)}, dim={self.dim}, unit={self.unit!r}, encoder={self.encoder!r}, "
                f"fingerprint={self.fingerprint!r}, path={None if self.path is None else str(self.path)!r})")

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def info(self) -> dict[str, Any]:
        return {"n": len(self), "dim": self.dim, "encoder": self.encoder, "unit": self.unit,
                "layer": self.layer, "fingerprint": self.fingerprint, "precision": self.precision,
                "max_length": self.max_length, "from_cache": self.from_cache}

    def has_standard_layout(self) -> bool:
        """True when ``pair_index``/``label`` are alignscope's layout for the unit (what the sidecar omits)."""
        if self.unit == "completion" and len(self) % 2:
            return False
        pair_index, label = _standard_layout(self.unit, len(self))
        return _same(self.pair_index, pair_index) and _same(self.label, label)

    # ------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``PATH`` (plain float32 ``.npy``) and ``PATH.json`` (what the rows are, plus
        ``extra`` and this object's own ``extra``), each atomically; returns ``PATH``."""
        path = Path(path).expanduser()
        matrix = validated_matrix(self.matrix, str(path))
        more = {**self.extra, **(extra or {})}
        clash = sorted(set(more) & _RESERVED)
        if clash:
            raise EmbeddingError(f"extra metadata may not use the reserved keys {', '.join(clash)}")
        meta: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "shape": list(matrix.shape),
                                "dtype": "float32", **self.info()}
        if not self.has_standard_layout():
            meta["pair_index"] = None if self.pair_index is None else np.asarray(self.pair_index).tolist()
            meta["label"] = None if self.label is None else np.asarray(self.label).tolist()
        meta.update(more)
        sidecar = sidecar_path(path)
        # Old sidecar out first, new one last: a crash in between leaves a matrix without a
        # sidecar (loaded as rows of unknown unit, a cache miss), never one described wrongly.
        sidecar.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, matrix, allow_pickle=False)
        write_json(sidecar, meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, unit: str | None = None) -> "Embeddings":
        """Read ``PATH`` (+ ``PATH.json``, or an earlier alignscope version's files; see the module
        docstring). A ``.npy`` without metadata gets ``unit`` (its rows in alignscope's layout) or,
        with ``unit=None``, rows whose pairs are unknown. A ``unit`` that contradicts the metadata,
        a matrix that is not 2-D finite floats, pickled objects or a sidecar that does not match the
        matrix raise :class:`EmbeddingError` naming the file."""
        if unit not in (None, *UNITS):
            raise EmbeddingError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        path = Path(path).expanduser()
        matrix = _read_matrix(path)
        meta = _read_meta(path)
        if meta is None:
            try:
                return cls.from_matrix(matrix, unit, precision=None, from_cache=True, path=path)
            except EmbeddingError as exc:
                raise EmbeddingError(f"{path}: {exc}") from None
        name = str(meta.pop("_file"))
        described = [meta.get("shape", list(matrix.shape)),
                     [meta.get("n", matrix.shape[0]), meta.get("dim", matrix.shape[1])]]
        for shape in described:
            if shape != list(matrix.shape):
                raise EmbeddingError(f"{name}: describes a matrix of shape {shape}, but {path.name} has shape "
                                     f"{list(matrix.shape)}")
        stored_unit = meta.get("unit")
        if unit is not None and stored_unit is not None and unit != stored_unit:
            raise EmbeddingError(f"{path}: holds {stored_unit}-unit embeddings (per {Path(name).name}), not {unit}")
        stored_unit = stored_unit or unit
        try:
            if "pair_index" in meta or "label" in meta:  # a layout of its own, spelled out
                pair_index, label = (None if meta.get(k) is None else np.asarray(meta[k], dtype=t)
                                     for k, t in (("pair_index", np.int64), ("label", np.int8)))
            else:
                pair_index, label = _standard_layout(stored_unit, len(matrix))
            extra = {k: v for k, v in meta.items() if k not in _RESERVED}
            return cls(matrix, pair_index, label, encoder=_str_or_none(meta.get("encoder")), unit=stored_unit,
                       layer=_int_or_none(meta.get("layer")), fingerprint=_str_or_none(meta.get("fingerprint")),
                       precision=_str_or_none(meta.get("precision")), max_length=_int_or_none(meta.get("max_length")),
                       from_cache=True, extra=extra, path=path)
        except (EmbeddingError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"{name}: {str(exc).splitlines()[0]}") from None


def sidecar_path(path: str | os.PathLike) -> Path:
    """The metadata file of the embeddings at ``path``: ``emb.npy`` → ``emb.npy.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


# ------------------------------------------------------------------------------------------ reading
def _read_matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise EmbeddingError(f"{path}: no such embedding file")
    try:
        matrix = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise EmbeddingError(f"{path}: holds Python objects (pickle); save a plain float array with "
                                 "numpy.save(path, array.astype('float32'))") from None
        raise EmbeddingError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    except (OSError, EOFError) as exc:
        raise EmbeddingError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
    if not isinstance(matrix, np.ndarray):  # .npz archives load as NpzFile
        raise EmbeddingError(f"{path}: expected one .npy array, got a .npz archive")
    return validated_matrix(matrix, str(path))


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The normalised metadata of ``path`` (with ``_file``, where it came from), or None (raw)."""
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        meta = _read_json(sidecar)
        if not isinstance(meta, dict):
            raise EmbeddingError(f"{sidecar}: not readable embedding metadata (expected a JSON object)")
        if meta.get("format") not in (None, FORMAT):
            raise EmbeddingError(f"{sidecar}: not alignscope embedding metadata (format {meta.get('format')!r})")
        version = meta.get("version", 1)
        if not is_int(version):
            raise EmbeddingError(f"{sidecar}: format version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise EmbeddingError(f"{sidecar}: written by a newer alignscope (format version {meta['version']}); "
                                 "upgrade alignscope to read it")
        return {**meta, "_file": sidecar}  # the format itself, or the embed command's sidecar before it
    legacy = path.with_suffix(".json")
    if path.suffix != ".npy" or not legacy.is_file():
        return None
    try:
        meta = _read_json(legacy)
    except EmbeddingError:
        return None  # a file of the user's that happens to share the name: not ours
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("key"), dict) and "shape" in meta:  # the embedding cache's old entry
        key = meta["key"]
        return {"unit": "completion", "encoder": key.get("encoder"), "layer": key.get("layer"),
                "fingerprint": key.get("fingerprint"), "precision": key.get("precision"),
                "max_length": key.get("max_length"), "shape": meta["shape"], "key": key, "_file": legacy}
    if {"n", "dim", "unit", "encoder", "fingerprint"} <= set(meta):  # an embed job's old embeddings.json
        return {**meta, "_file": legacy}
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EmbeddingError(f"{path}: not readable embedding metadata ({str(exc).splitlines()[0]})") from None


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise EmbeddingError(f"expected a string, got {value!r}")


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value):
        raise EmbeddingError(f"expected an integer, got {value!r}")
    return int(value)


def validated_matrix(matrix: np.ndarray, name: str) -> np.ndarray:
    """``matrix`` as C-contiguous float32 ``(n, d)``, or :class:`EmbeddingError` naming ``name`` (and
    the first row that is not finite)."""
    matrix = np.asarray(matrix)
    if matrix.dtype.kind != "f":
        raise EmbeddingError(f"{name}: embeddings must be floating point, got dtype {matrix.dtype}")
    if matrix.ndim != 2:
        raise EmbeddingError(f"{name}: embeddings must be 2-D (rows x dims), got shape {matrix.shape}")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise EmbeddingError(f"{name}: embeddings are empty (shape {matrix.shape})")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported below
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    finite_rows = np.isfinite(matrix).all(axis=1)
    if not finite_rows.all():
        bad = int(np.flatnonzero(~finite_rows)[0])
        kind = "NaN" if np.isnan(matrix[bad]).any() else "inf"
        raise EmbeddingError(f"{name}: row {bad} (0-based) contains {kind}; "
                             f"{int((~finite_rows).sum())} of {len(matrix)} rows are not finite")
    return matrix
