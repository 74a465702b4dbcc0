"""alignscope.embed.regions: the Map's named regions (k-means on the map, class-based TF-IDF)."""
import numpy as np
import pytest

from alignscope.embed.regions import RegionError, default_region_count, density_contours, map_regions

TOPICS = {(-5.0, 0.0): "recipe flour butter oven bake dough", (5.0, 0.0): "python function list loop code variable",
          (0.0, 6.0): "planet orbit moon telescope star galaxy"}


def _map(n_per: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy, texts, truth = [], [], []
    filler = "the and this that with answer question please".split()
    for t, ((cx, cy), words) in enumerate(TOPICS.items()):
        vocabulary = words.split()
        xy.append(rng.normal((cx, cy), 0.5, size=(n_per, 2)))
        for _ in range(n_per):
            texts.append(" ".join(rng.choice(vocabulary + filler, size=12)))
        truth += [t] * n_per
    return np.vstack(xy), texts, np.array(truth)


def test_each_region_is_named_by_its_own_words():
    xy, texts, truth = _map()
    found = map_regions(xy, texts, n_regions=3, seed=0)
    assert found.region.shape == (len(xy),) and found.centres.shape == (3, 2) and found.sizes.sum() == len(xy)
    for r in range(3):
        members = truth[found.region == r]
        topic = np.bincount(members).argmax()
        assert (members == topic).mean() > 0.99  # the three blobs are the three regions
        vocabulary = set(list(TOPICS.values())[topic].split())
        assert found.terms[r] and set(found.terms[r]) <= vocabulary, (found.terms[r], vocabulary)
        assert np.linalg.norm(found.centres[r] - np.array(list(TOPICS)[topic])) < 0.5  # the label sits on its points
    assert all(" · " in label for label in found.labels)


def test_same_seed_same_regions_and_default_count():
    xy, texts, _ = _map(n_per=50)
    a, b = map_regions(xy, texts, seed=3), map_regions(xy, texts, seed=3)
    assert np.array_equal(a.region, b.region) and a.labels == b.labels
    assert len(a.labels) == default_region_count(len(xy)) == 4
    assert default_region_count(124_000) == 16 and default_region_count(20) == 2


def test_non_finite_points_and_wordless_texts():
    xy, texts, _ = _map(n_per=30)
    xy[0] = np.nan
    found = map_regions(xy, ["1234 5678 !!"] * len(xy), n_regions=3)
    assert found.labels == ["", "", ""] and len(found.region) == len(xy)


@pytest.mark.parametrize("xy, texts, k, message", [
    (np.zeros((5, 3)), ["a"] * 5, 2, "shape"),
    (np.zeros((5, 2)), ["a"] * 4, 2, "one text per point"),
    (np.zeros((5, 2)), ["a"] * 5, 6, "between 1 and"),
    (np.full((5, 2), np.nan), ["a"] * 5, 2, "finite"),
])
def test_bad_input_is_one_clear_error(xy, texts, k, message):
    with pytest.raises(RegionError, match=message):
        map_regions(xy, texts, n_regions=k)


def test_density_contours_enclose_their_share_of_a_gaussian():
    """For an isotropic Gaussian, the line holding a share p of the points is the circle of radius
    sigma * sqrt(-2 ln(1 - p)); the traced lines sit there within 3 %."""
    sigma = 0.2
    xy = np.random.default_rng(0).normal(0.0, sigma, size=(200_000, 2))
    contours = density_contours(xy, box=(-1, -1, 1, 1))
    assert [c["share"] for c in contours] == [0.25, 0.5, 0.75]
    for contour in contours:
        assert len(contour["lines"]) == 1  # one blob, one closed line per share
        vertices = np.asarray(contour["lines"][0]).reshape(-1, 2)
        radius = np.hypot(*vertices.T) / sigma
        assert abs(radius.mean() / np.sqrt(-2 * np.log(1 - contour["share"])) - 1) < 0.03
        assert radius.std() / radius.mean() < 0.05


def test_density_contours_keep_the_payload_small_and_refuse_bad_shares():
    rng = np.random.default_rng(1)
    xy = np.vstack([rng.normal(c, 0.05, size=(20_000, 2)) for c in rng.uniform(-0.8, 0.8, size=(30, 2))])
    contours = density_contours(xy, max_vertices=600)
    assert sum(len(line) // 2 for c in contours for line in c["lines"]) <= 600
    assert density_contours(xy[:5]) == []
    with pytest.raises(RegionError, match="between 0 and 1"):
        density_contours(xy, shares=(0.5, 1.0))
