"""alignscope.select.gmm.GaussianMixture is a scikit-learn estimator: scikit-learn's own estimator checks.

``parametrize_with_checks`` yields one pytest case per check (fitting, cloning, pickling, input
validation, n_features_in_, feature names, read-only memory maps, idempotence, sample-order and
subset invariance...). No check is expected to fail; checks that scikit-learn itself skips (the
array-API one without SCIPY_ARRAY_API) show as skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from alignscope.select.gmm import COVARIANCE_TYPES, GaussianMixture, GMMError

ESTIMATORS = [GaussianMixture(covariance_type=c) for c in COVARIANCE_TYPES] + [
    # the alignscope additions on the same checks: row subsample + refinement, float32, small chunks
    GaussianMixture(3, fit_sample=8, refine_steps=1, dtype="float32", chunk_size=7),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("params, name", [
    ({"covariance_type": "banded"}, "covariance_type"),
    ({"n_components": 0}, "n_components"),
    ({"tol": -1.0}, "tol"),
    ({"dtype": "float16"}, "dtype"),
    ({"fit_sample": 0}, "fit_sample"),
])
def test_parameters_are_checked_in_fit_with_one_line_errors(params, name):
    gmm = GaussianMixture(**params)  # storing them never fails (scikit-learn's rule)
    assert gmm.get_params()[name] == params[name]
    with pytest.raises(GMMError, match=name) as info:
        gmm.fit(np.random.default_rng(0).normal(size=(20, 2)))
    assert isinstance(info.value, InvalidParameterError) and "\n" not in str(info.value)
    assert not hasattr(gmm, "weights_")


def test_unfitted_and_bad_input_errors_are_both_gmm_and_sklearn_errors():
    with pytest.raises(NotFittedError) as info:
        GaussianMixture().predict(np.ones((3, 2)))
    assert isinstance(info.value, GMMError)
    gmm = GaussianMixture().fit(np.random.default_rng(0).normal(size=(30, 2)))
    with pytest.raises(GMMError, match="Reshape your data") as info:
        gmm.score_samples(np.ones(2))
    assert "\n" not in str(info.value)
    with pytest.raises(GMMError, match="n_samples = 1"):
        GaussianMixture(2).fit(np.ones((1, 2)))


def test_float32_input_is_not_copied():
    X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    gmm = GaussianMixture(2)
    assert gmm._validate_X(X, reset=True) is X
    assert gmm.fit(X).score_samples(X).dtype == np.float64


def test_importing_alignscope_gmm_changes_no_environment_variable():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import os; before = dict(os.environ); import alignscope.select.gmm, alignscope.select.selectors; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
