"""ISA (Khera et al. 2024) as published, and the torch Gaussian mixture under it.

No mocks: real EM fits on planted mixtures, scikit-learn as the reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from alignscope.select.gmm import COVARIANCE_TYPES, GaussianMixture, GMMError
from alignscope.select.selectors import (ISASelector, SelectionError, isa_delta, isa_delta_leave_one_out,
                               isa_entropy, isa_probability, isa_scale, select)


def planted_mixture(n=3000, d=8, seed=0, weight=0.7, separation=6.0, dtype=np.float64):
    """Two Gaussians: component 0 (share ``weight``) at 0 with unit covariance, component 1 at
    ``separation`` along every axis with a random anisotropic covariance."""
    rng = np.random.default_rng(seed)
    n0 = int(round(weight * n))
    a = rng.standard_normal((n0, d))
    scales = np.linspace(0.3, 1.5, d)
    rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    b = (rng.standard_normal((n - n0, d)) * scales) @ rot.T + separation
    X = np.concatenate([a, b]).astype(dtype)
    truth = np.concatenate([np.zeros(n0, int), np.ones(n - n0, int)])
    order = rng.permutation(n)
    return X[order], truth[order], {"means": np.stack([np.zeros(d), np.full(d, separation)]),
                                    "weights": np.array([weight, 1 - weight]),
                                    "cov1": rot @ np.diag(scales ** 2) @ rot.T}


@pytest.fixture(scope="module")
def mixture():
    return planted_mixture()


# ----------------------------------------------------------------------------------- the formulas
def test_fast_delta_equals_literal_leave_one_out_exactly(mixture):
    """Delta = H(X) - H(X \\ x) computed literally (O(N^2), exact sums) == -p log p, bitwise.

    The literal reference recomputes H(X \\ x) from scratch over the other N-1 points for every x,
    with exact integer summation; the only float rounding is the per-point -p log p that both
    paths share, so agreement must be exact (no tolerance).
    """
    X, _, _ = mixture
    loglik = GaussianMixture(2, seed=0).fit(X).score_samples(X)[:1500]
    # Include the awkward values: l' = 0 exactly (p = 1, Delta = 0) and l' = 1, and duplicates.
    loglik = np.concatenate([loglik, loglik[:25]])
    p = isa_probability(isa_scale(loglik))
    assert p.min() == 1.0 and p.max() == np.e
    fast = isa_delta(p)
    literal = isa_delta_leave_one_out(p)
    assert np.array_equal(fast, literal)
    assert np.array_equal(fast.view(np.int64), literal.view(np.int64))  # bitwise, signs of zero too
    # Renormalised p: the identity holds just the same.
    q = isa_probability(isa_scale(loglik), "renormalised")
    assert np.array_equal(isa_delta(q), isa_delta_leave_one_out(q))


def test_float_leave_one_out_differs_only_by_summation_rounding(mixture):
    X, _, _ = mixture
    loglik = GaussianMixture(2, seed=0).fit(X).score_samples(X)[:400]
    p = isa_probability(isa_scale(loglik))
    fast = isa_delta(p)
    naive = isa_delta_leave_one_out(p, exact=False)
    bound = 2 * len(p) * np.finfo(np.float64).eps * np.abs(fast).sum()
    assert np.max(np.abs(naive - fast)) <= bound
    # ...and that rounding is real: the naive float difference is generally not the exact term.
    assert not np.array_equal(naive, fast)


def test_published_entropy_is_negative_and_delta_is_its_leave_one_out_change(mixture):
    X, _, _ = mixture
    loglik = GaussianMixture(2, seed=0).fit(X).score_samples(X)
    p = isa_probability(isa_scale(loglik))
    delta = isa_delta(p)
    assert isa_entropy(p) < 0  # p = e^{l'} >= 1: "H" is not a true entropy (ISA.md §3)
    assert (delta <= 0).all()
    i = 17
    without = isa_entropy(np.delete(p, i))
    assert isa_entropy(p) - without == pytest.approx(delta[i], abs=1e-9)


def test_scale_handles_constant_loglik():
    assert np.array_equal(isa_scale(np.full(5, -3.0)), np.zeros(5))
    with pytest.raises(SelectionError):
        isa_probability(np.zeros(3), "normalised")


# ------------------------------------------------------------------------------ the selection rule
def test_published_rule_keeps_the_lowest_likelihood_points(mixture):
    X, _, _ = mixture
    k = 150
    table = select(X, "isa", k=k, seed=0)
    kept = set(table.table.loc[table["selected"], "index"])
    lowest = set(np.argsort(table["loglik"].to_numpy(), kind="stable")[:k])
    assert kept == lowest
    # Delta is decreasing in l': ranking by Delta descending == ranking by l' ascending.
    by_rank = table.table.sort_values("rank")
    assert by_rank["loglik_scaled"].is_monotonic_increasing
    assert by_rank["delta"].is_monotonic_decreasing
    assert table["score"].equals(table["delta"])
    assert table["loglik_scaled"].min() == 0.0 and table["loglik_scaled"].max() == 1.0
    # The rank-1 point is the least likely one, with Delta = 0 exactly.
    top = by_rank.iloc[0]
    assert top["loglik_scaled"] == 0.0 and top["delta"] == 0.0


def test_renormalised_variant_flips_the_ranking(mixture):
    X, _, _ = mixture
    k = 150
    published = select(X, "isa", k=k, seed=0)
    renorm = select(X, "isa", k=k, seed=0, variant="renormalised")
    highest = set(np.argsort(-renorm["loglik"].to_numpy(), kind="stable")[:k])
    assert set(renorm.table.loc[renorm["selected"], "index"]) == highest
    assert not set(renorm.table.loc[renorm["selected"], "index"]) & set(published.table.loc[published["selected"], "index"])
    assert renorm.config["options"]["variant"] == "renormalised"


def test_isa_table_columns_and_config(mixture):
    X, truth, _ = mixture
    table = select(X, "isa", fraction=0.05, seed=3, data_fingerprint="abc", encoder="minilm")
    assert list(table.table.columns[:4]) == ["index", "score", "selected", "rank"]
    for column in ("loglik", "loglik_scaled", "delta", "component"):
        assert column in table.table.columns
    assert table["selected"].sum() == 150
    assert sorted(table["rank"]) == list(range(1, len(X) + 1))
    # component = argmax responsibility recovers the planted labels (up to label swap)
    agree = (table["component"].to_numpy() == truth).mean()
    assert max(agree, 1 - agree) > 0.99
    config = table.config
    assert config["method"] == "isa" and config["k"] == 150 and config["fraction"] == 0.05
    assert config["seed"] == 3 and table.fingerprint == "abc" and config["encoder"] == "minilm"
    assert config["options"]["covariance_type"] == "full" and config["unit"] == "pair"
    assert config["gmm"]["converged"] is True


def test_isa_same_seed_same_subset_bitwise(mixture):
    X, _, _ = mixture
    a = select(X.astype(np.float32), "isa", k=100, seed=5)
    b = select(X.astype(np.float32), "isa", k=100, seed=5)
    assert a.equals(b)
    assert np.array_equal(a["score"].to_numpy().view(np.int64), b["score"].to_numpy().view(np.int64))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_isa_runs_for_every_covariance_type(mixture, covariance_type):
    X, _, _ = mixture
    table = select(X, "isa", k=30, covariance_type=covariance_type)
    assert table["selected"].sum() == 30
    assert table.config["options"]["covariance_type"] == covariance_type


def test_isa_with_pca_and_subsample_and_sklearn_backend(mixture):
    X, _, _ = mixture
    reduced = select(X, "isa", k=150, pca_dim=4)
    assert reduced.config["options"]["pca_dim"] == 4
    assert reduced["selected"].sum() == 150
    with pytest.raises(SelectionError, match="pca_dim"):
        select(X, "isa", k=5, pca_dim=99)
    full = select(X, "isa", k=150)
    sub = select(X, "isa", k=150, fit_sample=1000, refine_steps=1)
    assert sub.config["gmm"]["fit_rows"] == 1000
    overlap = (full["selected"] & sub["selected"]).sum() / 150
    assert overlap >= 0.9
    sk = select(X, "isa", k=150, backend="sklearn")
    assert (full["selected"] & sk["selected"]).sum() / 150 >= 0.97


def test_isa_input_validation():
    with pytest.raises(SelectionError, match="NaN"):
        X = np.ones((10, 3))
        X[4, 1] = np.nan
        select(X, "isa", k=2)
    with pytest.raises(SelectionError, match="at least 2"):
        select(np.ones((1, 3)), "isa", k=1)
    with pytest.raises(SelectionError, match="2D array"):
        select(np.ones(10), "isa", k=1)
    # scikit-learn's rule: the constructor only stores; fit (and make_selector) validate
    banded = ISASelector(covariance_type="banded")
    assert banded.get_params()["covariance_type"] == "banded"
    with pytest.raises(SelectionError, match="covariance_type"):
        banded.fit(np.random.default_rng(0).normal(size=(20, 2)))
    assert not hasattr(banded, "gmm_")
    with pytest.raises(SelectionError, match="variant"):
        select(np.ones((10, 3)), "isa", k=2, variant="normalised")


# ------------------------------------------------------------------------------ the mixture itself
def test_gmm_recovers_a_planted_two_component_mixture():
    X, _, truth = planted_mixture(n=8000, d=5, seed=1, weight=0.65)
    gmm = GaussianMixture(2, covariance_type="full", seed=0).fit(X)
    order = np.argsort(gmm.means_[:, 0])
    assert np.allclose(gmm.weights_[order], truth["weights"], atol=0.01)
    assert np.allclose(gmm.means_[order], truth["means"], atol=0.08)
    assert np.allclose(gmm.covariances_[order[1]], truth["cov1"], atol=0.12)
    assert gmm.converged_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gmm_matches_sklearn(covariance_type, mixture):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    X, _, _ = mixture
    ours = GaussianMixture(2, covariance_type=covariance_type, seed=0).fit(X)
    # Same fitted parameters → scikit-learn's log-likelihood equals ours to float64 rounding.
    assert np.allclose(ours.to_sklearn().score_samples(X), ours.score_samples(X), rtol=0, atol=1e-9)
    assert np.allclose(ours.to_sklearn().predict_proba(X), ours.predict_proba(X), atol=1e-9)
    # Fitted independently on the same data, both reach the same optimum.
    theirs = SkGaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, abs=1e-6)
    assert np.allclose(np.sort(ours.weights_), np.sort(theirs.weights_), atol=1e-6)


def test_gmm_float32_path_stays_close_to_float64():
    X, _, _ = planted_mixture(n=20000, d=32, seed=2)
    exact = GaussianMixture(2, seed=0, dtype="float64").fit(X)
    fast = GaussianMixture(2, seed=0, dtype="float32").fit(X.astype(np.float32))
    assert str(fast.compute_dtype_) == "torch.float32"
    diff = np.abs(fast.score_samples(X.astype(np.float32)) - exact.score_samples(X))
    assert diff.max() < 1e-3
    # The float32 parameters evaluated by scikit-learn in float64 agree with our float32 scoring.
    sk = fast.to_sklearn().score_samples(X.astype(np.float32).astype(np.float64))
    assert np.abs(sk - fast.score_samples(X.astype(np.float32))).max() < 1e-3


def test_gmm_subsample_then_refine_on_all_rows():
    X, _, truth = planted_mixture(n=12000, d=6, seed=4)
    full = GaussianMixture(2, seed=0).fit(X)
    sub = GaussianMixture(2, seed=0, fit_sample=2000, refine_steps=1).fit(X)
    assert sub.fit_rows_ == 2000
    order_f, order_s = np.argsort(full.means_[:, 0]), np.argsort(sub.means_[:, 0])
    # After one EM step on all rows, the parameters are the full-data ones to ~1e-3.
    assert np.allclose(full.means_[order_f], sub.means_[order_s], atol=5e-3)
    assert np.allclose(full.weights_[order_f], sub.weights_[order_s], atol=1e-3)


def test_gmm_errors_are_clear():
    with pytest.raises(GMMError, match="covariance_type"):
        GaussianMixture(2, covariance_type="banded").fit(np.ones((10, 2)))  # sklearn: checked in fit
    with pytest.raises(GMMError, match="not fitted"):
        GaussianMixture(2).score_samples(np.ones((3, 2)))
    gmm = GaussianMixture(2).fit(planted_mixture(n=300, d=3)[0])
    with pytest.raises(GMMError, match="features"):
        gmm.score_samples(np.ones((3, 4)))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(GMMError, match="CUDA"):
            GaussianMixture(2, device="cuda").fit(np.ones((10, 2)))


def test_gmm_on_gpu_when_present():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    X, _, _ = planted_mixture(n=20000, d=16)
    cpu = GaussianMixture(2, seed=0, device="cpu", dtype="float64").fit(X)
    gpu = GaussianMixture(2, seed=0, device="cuda", dtype="float64").fit(X)
    assert np.allclose(cpu.score_samples(X), gpu.score_samples(X), atol=1e-6)


def test_isa_selector_interface_and_inductive_scoring(mixture):
    X, _, _ = mixture
    selector = ISASelector(seed=0).fit(X)
    table = selector.select(k=10)
    assert np.array_equal(selector.score_samples(), table["score"].to_numpy())
    new = X[:200] + 0.01
    scores = selector.score_samples(new)
    # new points: the fitted mixture's log-likelihood, min-max over the points given, -p log p
    expected = isa_delta(isa_probability(isa_scale(selector.gmm_.score_samples(new))))
    assert scores.shape == (200,) and np.array_equal(scores, expected)


# ------------------------------------------------------------------- the fast path vs the exact one
def _ill_conditioned_overlap(n=20000, d=32, seed=3):
    """Two overlapping components (soft responsibilities for many rows), features scaled over two
    decades (a covariance whose small directions float32/bf16 rounding in data coordinates would
    swamp)."""
    X, _, _ = planted_mixture(n=n, d=d, seed=seed, separation=1.0)
    return X * np.logspace(-2, 0, d)


def test_isa_fast_path_selects_what_the_exact_path_selects():
    """The large-data path (float32 E-steps, bf16 whitened M-step products: dtype="mixed", what
    "auto" picks on a big problem on a CPU with native bf16; a seeded sample, then one EM step on
    all rows) keeps >= 99 % of the points the same fit in float64 keeps."""
    X = _ill_conditioned_overlap()
    options = dict(k=1000, seed=0, fit_sample=5000, refine_steps=1)
    exact = select(X, "isa", dtype="float64", **options)
    fast_selector = ISASelector(seed=0, dtype="mixed", fit_sample=5000, refine_steps=1)
    fast = fast_selector.select(X.astype(np.float32), k=1000)
    assert fast.config["gmm"]["compute_dtype"] == "float32"
    assert fast.config["gmm"]["scatter_dtype"] == "bfloat16"
    assert exact.config["gmm"]["scatter_dtype"] == "float64"
    kept = lambda s: set(s.table["index"][s.table["selected"]])  # noqa: E731
    assert len(kept(fast) & kept(exact)) / 1000 >= 0.99
    diff = np.abs(fast.table["loglik"].to_numpy() - exact.table["loglik"].to_numpy())
    assert diff.max() < 0.05
    # the stage clock the ISA benchmark prints
    assert {"check_s", "fit_s", "sample_fit_s", "full_step_s", "score_s", "table_s"} <= set(fast_selector.timings_)
    assert all(value >= 0 for value in fast_selector.timings_.values())


def test_gmm_mixed_precision_m_step_stays_close_to_float64():
    """The bf16 scatter is taken in whitened coordinates with its diagonal in float32, so even the
    small-variance directions of an ill-conditioned mixture keep their parameters."""
    X = _ill_conditioned_overlap()
    exact = GaussianMixture(2, seed=0, dtype="float64").fit(X)
    mixed = GaussianMixture(2, seed=0, dtype="mixed").fit(X.astype(np.float32))
    # its first E-steps may run in bf16 (see the test below): a couple more iterations, same optimum
    assert mixed.converged_ and exact.n_iter_ <= mixed.n_iter_ <= exact.n_iter_ + 3
    assert mixed.lower_bound_ == pytest.approx(exact.lower_bound_, abs=1e-3)
    order_e, order_m = np.argsort(exact.weights_), np.argsort(mixed.weights_)
    assert np.allclose(mixed.weights_[order_m], exact.weights_[order_e], atol=1e-4)
    # covariances relative to each direction's own scale (the smallest variance is ~1e-4)
    scale = np.sqrt(np.einsum("kii->ki", exact.covariances_[order_e]))
    relative = (mixed.covariances_[order_m] - exact.covariances_[order_e]) / (scale[:, :, None] * scale[:, None, :])
    assert np.abs(relative).max() < 2e-3
    diff = np.abs(mixed.score_samples(X.astype(np.float32)) - exact.score_samples(X))
    assert diff.max() < 0.05


def test_gmm_bf16_e_steps_run_only_where_the_check_allows():
    """With dtype="mixed" the first EM iterations may run their E-step product in bf16: only when,
    on the first chunk, it moves the log-likelihoods by little (a median within 0.25 nats). Where
    it does, the ISA subset is the float32 one; where it does not (the benchmark's 256-d mixture
    with its long decaying spectrum), every iteration stays float32 and the fit is float32's."""
    from benchmarks.bench_isa import make_mixture

    well = planted_mixture(n=20000, d=64, seed=1, separation=1.0)[0].astype(np.float32)
    low = ISASelector(seed=0, dtype="mixed").select(well, k=1000)
    exact = ISASelector(seed=0, dtype="float32").select(well, k=1000)
    assert low.config["gmm"]["low_precision_iter"] >= 1 and low.config["gmm"]["low_precision_error"] <= 0.25
    assert exact.config["gmm"]["low_precision_iter"] == 0 and exact.config["gmm"]["low_precision_error"] is None
    kept = [set(s.table["index"][s.table["selected"]]) for s in (low, exact)]
    assert len(kept[0] & kept[1]) / 1000 >= 0.99
    assert np.abs(low.table["loglik"].to_numpy() - exact.table["loglik"].to_numpy()).max() < 0.05

    coarse = make_mixture(9000, 256)
    mixed = GaussianMixture(2, seed=0, dtype="mixed").fit(coarse)
    plain = GaussianMixture(2, seed=0, dtype="float32").fit(coarse)
    assert mixed.low_precision_error_ > 0.25 and mixed.low_precision_iter_ == 0
    assert mixed.n_iter_ == plain.n_iter_
    assert mixed.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-3)


def test_distinct_integers_checks_without_a_hash_table():
    from alignscope.select.selection import distinct_integers

    rng = np.random.default_rng(0)
    perm = rng.permutation(10_000)
    assert distinct_integers(perm) and distinct_integers(np.array([], dtype=np.int64))
    assert not distinct_integers(np.concatenate([perm, perm[:1]]))
    sparse = rng.choice(10**12, size=1000, replace=False)  # beyond the presence mask: sorted
    assert distinct_integers(sparse) and not distinct_integers(np.append(sparse, sparse[5]))
