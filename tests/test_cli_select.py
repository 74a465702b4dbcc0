"""`alignscope embed | select | export` end to end, for real (MiniLM on CPU, real files)."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.select.selection import Selection
from conftest import run_cli


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-select")
    home = folder / "home"
    env = {"ALIGNSCOPE_HOME": str(home)}
    result = run_cli("embed", "demo:120", "--out", folder / "emb.npy", "--json", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return folder, env, json.loads(result.stdout)


def test_embed_writes_a_matrix_with_its_meta(embedded):
    folder, env, info = embedded
    matrix = np.load(folder / "emb.npy", allow_pickle=False)
    assert matrix.shape == (240, info["dim"]) and info["n"] == 240 and matrix.dtype == np.float32
    assert info["encoder"] == "static"  # the command's default: seconds, not minutes
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-3)
    meta = json.loads((folder / "emb.npy.json").read_text())
    assert meta["unit"] == "completion" and meta["fingerprint"] == load_preferences("demo:120").fingerprint
    again = run_cli("embed", "demo:120", "--out", folder / "emb2.npy", "--json", env=env, timeout=600)
    assert json.loads(again.stdout)["from_cache"] is True


def test_select_isa_from_data_and_from_raw_embeddings_agree(embedded):
    folder, env, _ = embedded
    from_data = run_cli("select", "demo:120", "--method", "isa", "--k", "24", "--out", folder / "a.parquet",
                        "--json", env=env, timeout=600)
    assert from_data.returncode == 0, from_data.stderr
    summary = json.loads(from_data.stdout)
    assert (summary["n_points"], summary["n_selected"], summary["unit"]) == (240, 24, "completion")
    from_matrix = run_cli("select", "--embeddings", folder / "emb.npy", "--method", "isa", "--k", "24",
                          "--out", folder / "b.parquet", env=env)
    assert from_matrix.returncode == 0, from_matrix.stderr
    a, b = Selection.read(folder / "a.parquet"), Selection.read(folder / "b.parquet")
    assert set(a.table.loc[a.selected, "index"]) == set(b.table.loc[b.selected, "index"])
    for column in ("index", "score", "selected", "rank", "loglik", "loglik_scaled", "component", "pair_index", "label"):
        assert column in a.table.columns
    assert a.config["method"] == "isa"


def test_check_seeds_reports_how_much_of_the_subset_other_seeds_keep(embedded):
    """--check-seeds: the file is --seed's selection; the report counts the kept pairs every seed's
    selection of the same size keeps, checked here against the three selections made directly."""
    from alignscope.embed.embeddings import Embeddings
    from alignscope.select.selectors import select

    folder, env, _ = embedded
    result = run_cli("select", "--embeddings", folder / "emb.npy", "--method", "isa", "--k", "24", "--check-seeds",
                     "1,2", "--out", folder / "checked.parquet", "--force", "--json", env=env)
    assert result.returncode == 0, result.stderr
    agreement = json.loads(result.stdout)["seed_agreement"]
    embeddings = Embeddings.load(folder / "emb.npy")
    kept = {seed: set(t.table.loc[t.selected, "pair_index"]) for seed in (0, 1, 2)
            for t in [select(embeddings, "isa", k=24, seed=seed)]}
    written = Selection.read(folder / "checked.parquet")
    assert set(written.table.loc[written.selected, "pair_index"]) == kept[0]
    assert agreement["seeds"] == [0, 1, 2] and agreement["counted"] == "pairs"
    assert agreement["n_kept"] == len(kept[0])
    # the other seeds' subsets hold as many pairs as seed 0's: cut their own rankings at that count
    assert agreement["kept_by_all"] <= agreement["pairwise_min"] <= agreement["pairwise_max"] <= 1
    assert agreement["random_pairwise"] == pytest.approx(len(kept[0]) / 120, abs=1e-4)
    text = run_cli("select", "--embeddings", folder / "emb.npy", "--method", "random", "--k", "24", "--check-seeds",
                   "4", "--out", folder / "checked2.parquet", "--force", env=env)
    assert text.returncode == 0 and "kept under every seed (0, 4)" in text.stdout
    assert written.config["seed_agreement"] == agreement  # the file keeps it: the report shows it


@pytest.mark.parametrize("method", ["random", "density", "kcenter"])
def test_baselines_are_seeded(embedded, method):
    folder, env, _ = embedded
    tables = []
    for name in ("x", "y"):
        result = run_cli("select", "--embeddings", folder / "emb.npy", "--method", method, "--fraction", "0.1",
                         "--seed", "3", "--out", folder / f"{method}-{name}.parquet", "--force", env=env)
        assert result.returncode == 0, result.stderr
        tables.append(Selection.read(folder / f"{method}-{name}.parquet"))
    assert tables[0]["selected"].sum() == 24
    pd.testing.assert_frame_equal(tables[0].table, tables[1].table)


def test_export_formats_load_back_in_trl_shape(embedded):
    folder, env, _ = embedded
    run_cli("select", "--embeddings", folder / "emb.npy", "--method", "isa", "--k", "24", "--out",
            folder / "sel.parquet", "--force", env=env)
    hf = run_cli("export", "demo:120", folder / "sel.parquet", "--format", "hf", "--out", folder / "hf", env=env)
    assert hf.returncode == 0, hf.stderr
    dataset = datasets.load_from_disk(str(folder / "hf"))
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and 12 <= len(dataset) <= 24
    assert json.loads((folder / "hf" / "selection_config.json").read_text())["selection"]["method"] == "isa"
    kto = run_cli("export", "demo:120", folder / "sel.parquet", "--kind", "kto", "--out", folder / "kto.jsonl", env=env)
    assert kto.returncode == 0, kto.stderr
    rows = [json.loads(line) for line in (folder / "kto.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and set(rows[0]) == {"prompt", "completion", "label"}
    again = run_cli("export", "demo:120", folder / "sel.parquet", "--out", folder / "kto.jsonl", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--method", "isa", "--k", "100000"], "larger than the number of points"),
    (["--method", "isa", "--fraction", "0"], "--fraction must be in (0, 1]"),
    (["--method", "isa", "--fraction", "1.5"], "--fraction must be in (0, 1]"),
    (["--method", "nope", "--k", "3"], "invalid choice"),
    (["--method", "isa"], "exactly one of --k or --fraction"),
    (["--method", "density", "--k", "3", "--pca-dim", "4"], "apply to --method isa only"),
    (["--method", "isa", "--k", "3", "--check-seeds", "0"], "at least one seed other than --seed"),
    (["--method", "isa", "--k", "3", "--check-seeds", "one"], "not a comma-separated list of integers"),
])
def test_bad_select_arguments_exit_2_and_write_nothing(embedded, args, fragment):
    folder, env, _ = embedded
    out = folder / "never.parquet"
    result = run_cli("select", "--embeddings", folder / "emb.npy", *args, "--out", out, env=env)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_nan_embeddings_are_refused(tmp_path):
    matrix = np.ones((10, 4), np.float32)
    matrix[3, 1] = np.nan
    np.save(tmp_path / "bad.npy", matrix)
    result = run_cli("select", "--embeddings", tmp_path / "bad.npy", "--method", "isa", "--k", "2",
                     "--out", tmp_path / "s.parquet")
    assert result.returncode == 2 and "bad.npy" in result.stderr and not (tmp_path / "s.parquet").exists()


def test_random_selection_and_export_on_real_hh(hh_path, tmp_path):
    sel = tmp_path / "random.parquet"
    result = run_cli("select", hh_path, "--method", "random", "--fraction", "0.035", "--unit", "pair", "--out", sel)
    assert result.returncode == 0, result.stderr
    table = Selection.read(sel)
    assert len(table) == 2312 and table["selected"].sum() == round(0.035 * 2312)
    out = tmp_path / "subset.parquet"
    assert run_cli("export", hh_path, sel, "--out", out).returncode == 0
    subset = pd.read_parquet(out)
    assert len(subset) == table["selected"].sum()
    assert subset["prompt"].str.endswith("\n\nAssistant:").all()
