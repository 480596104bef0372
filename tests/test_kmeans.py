"""The device K-means++ against scikit-learn, and its invariants."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from cluscam.kmeans import kmeans


def _blobs(rng, n, d, k, spread):
    centers = rng.normal(size=(k, d)) * 10
    return centers[rng.integers(0, k, n)] + rng.normal(size=(n, d)) * spread


def _sk_inertia(x, k, seed, n_init=1):
    return KMeans(k, init="k-means++", n_init=n_init, random_state=seed).fit(x).inertia_


def test_inertia_matches_sklearn_on_separated_clusters():
    rng = np.random.default_rng(0)
    for t in range(25):
        n, d, k = int(rng.integers(60, 300)), int(rng.integers(2, 50)), int(rng.integers(2, 12))
        x = _blobs(rng, n, d, k, spread=0.3)
        ours = float(kmeans(torch.tensor(x)[None], k, seed=t).inertia[0])
        assert ours == pytest.approx(_sk_inertia(x, k, t), rel=0.01)


def test_inertia_matches_sklearn_over_many_random_problems():
    # Unstructured data has many local optima: single runs of either implementation land on
    # different ones, so agreement is judged over many problems (and each run stays close).
    rng = np.random.default_rng(1)
    ratios = []
    for t in range(40):
        n, d = int(rng.integers(50, 300)), int(rng.integers(2, 50))
        k = int(rng.integers(2, min(45, n // 3)))
        x = rng.normal(size=(n, d)) if t % 2 else _blobs(rng, n, d, int(rng.integers(2, 30)), rng.uniform(0.5, 8))
        ours = float(kmeans(torch.tensor(x)[None], k, seed=t).inertia[0])
        ratios.append(ours / _sk_inertia(x, k, t))
    ratios = np.array(ratios)
    assert abs(ratios.mean() - 1) < 0.01
    assert 0.85 < ratios.min() and ratios.max() < 1.15


def test_centroids_are_member_means_and_labels_are_nearest():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(3, 200, 16)), dtype=torch.float32)
    res = kmeans(x, 10, seed=0)
    for b in range(3):
        for j in range(10):
            members = x[b][res.labels[b] == j]
            assert len(members) == int(res.counts[b, j]) > 0
            torch.testing.assert_close(res.centroids[b, j], members.mean(0), atol=1e-5, rtol=1e-5)
        d = torch.cdist(x[b], res.centroids[b])
        assert torch.equal(d.argmin(1), res.labels[b])
        assert float(res.inertia[b]) == pytest.approx(float(d.min(1).values.pow(2).sum()), rel=1e-4)


def test_batch_equals_each_problem_alone_and_is_deterministic():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(5, 120, 8)), dtype=torch.float32)
    batch = kmeans(x, 7, seed=4)
    for b in range(5):
        alone = kmeans(x[b:b + 1], 7, seed=4)
        assert torch.equal(alone.labels[0], batch.labels[b])
    again = kmeans(x, 7, seed=4)
    assert torch.equal(again.labels, batch.labels)
    assert not torch.equal(kmeans(x, 7, seed=5).labels, batch.labels)


def test_n_init_never_worse_than_one_seeding():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(4, 150, 10)), dtype=torch.float32)
    one = kmeans(x, 12, seed=0).inertia
    best = kmeans(x, 12, seed=0, n_init=5).inertia  # the first seeding is the n_init=1 one
    assert bool((best <= one + 1e-4).all())


def test_degenerate_inputs():
    # k == N: every point its own cluster, zero inertia.
    x = torch.randn(2, 6, 3)
    res = kmeans(x, 6)
    assert float(res.inertia.max()) < 1e-8 and bool((res.counts == 1).all())
    # Fewer distinct points than clusters: no crash, every point in a non-empty cluster.
    dup = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])[None]
    res = kmeans(dup, 3)
    assert float(res.inertia[0]) < 1e-8
    assert int(res.counts.sum()) == 5
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, 7)
    with pytest.raises(ValueError, match=r"\[B, N, d\]"):
        kmeans(x[0], 2)
