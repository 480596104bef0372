"""ClusCAM (Alg. 1) against an explicit per-image reference, its invariants and a known answer."""
import functools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from torch import nn

import cluscam.cluscam as cluscam_module
from cluscam import ClusCAM, LayerSpec
from cluscam.kmeans import _kmeanspp, kmeans


def small_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, classes),
    ).eval()


def reference_cluscam(model, x, maps, labels, k, r, tau):
    """Eq. 4-7 for one image, written out explicitly at full resolution with the given partition."""
    size = x.shape[-2:]
    up = F.interpolate(maps[:, None].double(), size=size, mode="bilinear", align_corners=False)[:, 0]
    normed = []
    for m in up:  # Normalize(Upsample(F)); a constant map stays as it is
        normed.append((m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else m)
    normed = torch.stack(normed)
    meta = torch.stack([normed[labels == j].mean(0) for j in range(k)])  # Eq. 4
    with torch.no_grad():
        logits = model(x[None])[0]
        c = int(logits.argmax())
        s = np.array([float(model((x * m.float())[None])[0, c] - logits[c]) for m in meta])  # Eq. 5
    kept = np.argsort(-s, kind="stable")[: k - int(r * k)]  # discard the floor(rK) lowest
    alpha = np.exp(s[kept] / tau - (s[kept] / tau).max())
    alpha /= alpha.sum()  # Eq. 6
    e = sum(a * meta[j] for a, j in zip(alpha, kept))  # Eq. 7
    return ((e - e.min()) / (e.max() - e.min())).float()


@pytest.mark.parametrize("metric", ["upsampled", "lowres"])
def test_matches_explicit_reference(metric):
    model = small_cnn()
    x = torch.randn(3, 3, 48, 40)
    cam = ClusCAM(model, "6", k=6, r=0.34, tau=0.4, metric=metric, chunk_size=5)
    sal = cam(x)
    _, meta = cam.group_scores(x)
    store = {}
    handle = model[6].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    for b in range(3):
        ref = reference_cluscam(model, x[b], store["a"][b], meta.labels[b], 6, 0.34, 0.4)
        torch.testing.assert_close(sal[b], ref, atol=2e-4, rtol=0)


class FixedMaps(nn.Module):
    """A 'model' whose hooked layer returns given feature maps, whatever the image."""

    def __init__(self, maps):
        super().__init__()
        self.maps = nn.Parameter(maps, requires_grad=False)
        self.feat = nn.Identity()
        self.head = nn.Linear(maps.shape[1], 3)

    def forward(self, x):
        f = self.feat(self.maps.expand(x.shape[0], -1, -1, -1) + 0 * x.mean())
        return self.head(f.mean((2, 3)))


def test_upsampled_metric_partitions_like_kmeans_on_explicit_upsampled_maps():
    gen = torch.Generator().manual_seed(0)
    groups, per, grid, size = 6, 12, (5, 5), (64, 64)
    protos = torch.rand(groups, *grid, generator=gen)
    # Members: prototype + small noise, each with its own scale and offset (which Normalize removes).
    maps = protos.repeat_interleave(per, 0) + 0.05 * torch.randn(groups * per, *grid, generator=gen)
    maps = maps * torch.rand(groups * per, 1, 1, generator=gen).add(0.5) * 4 + torch.randn(groups * per, 1, 1, generator=gen)
    model = FixedMaps(maps[None]).eval()
    cam = ClusCAM(model, "feat", k=groups, metric="upsampled")
    _, meta = cam.group_scores(torch.zeros(1, 3, *size))
    up = F.interpolate(maps[:, None].double(), size=size, mode="bilinear", align_corners=False)[:, 0].flatten(1)
    up = (up - up.min(1, keepdim=True).values) / (up.max(1, keepdim=True).values - up.min(1, keepdim=True).values)
    sk = KMeans(groups, init="k-means++", n_init=1, random_state=0).fit(up.numpy())
    assert adjusted_rand_score(sk.labels_, meta.labels[0].numpy()) == 1.0
    # Meta-representations are the means of the members' normalized upsampled maps (Eq. 4).
    meta_up = F.interpolate(meta.maps.double(), size=size, mode="bilinear", align_corners=False)[0].flatten(1)
    for j in range(groups):
        torch.testing.assert_close(meta_up[j], up[meta.labels[0] == j].mean(0), atol=1e-5, rtol=0)


def test_upsampled_metric_stops_at_scikit_learns_tolerance(monkeypatch):
    """K-means stops where scikit-learn stops on the explicitly upsampled maps: its tolerance,
    tol * mean per-feature variance, is that of the H*W-pixel space, not of the h*w projected points
    (1,024x looser at 7x7 -> 224x224).  A loose tol makes the tolerance, not label stability, end
    the loop (scikit-learn with tol=0 runs longer to another partition); both start from the same
    k-means++ seeds, which are points of either space."""
    monkeypatch.setattr(cluscam_module, "kmeans", functools.partial(kmeans, tol=30.0))
    k, size = 8, (112, 112)
    maps = torch.rand(512, 7, 7, generator=torch.Generator().manual_seed(0))
    cam = ClusCAM(FixedMaps(maps[None]).eval(), "feat", k=k, metric="upsampled")
    _, meta = cam.group_scores(torch.zeros(1, 3, *size))
    up = F.interpolate(maps[:, None].double(), size=size, mode="bilinear", align_corners=False)[:, 0].flatten(1)
    up = (up - up.min(1, keepdim=True).values) / (up.max(1, keepdim=True).values - up.min(1, keepdim=True).values)
    seeds = _kmeanspp(up[None].float(), up.float().pow(2).sum(-1)[None], k, torch.Generator().manual_seed(0))[0]
    init = up[torch.cdist(seeds.double(), up).argmin(1)].numpy()
    sk = KMeans(k, init=init, n_init=1, tol=30.0).fit(up.numpy())
    converged = KMeans(k, init=init, n_init=1, tol=0.0).fit(up.numpy())
    assert sk.n_iter_ < converged.n_iter_ and (sk.labels_ != converged.labels_).any()  # the tolerance ended it
    assert (meta.labels[0].numpy() == sk.labels_).all()


def test_batch_equals_single_and_is_deterministic():
    model = small_cnn(1)
    x = torch.randn(4, 3, 32, 32)
    cam = ClusCAM(model, "6", k=10, r=0.3, tau=0.5, chunk_size=7)
    sal = cam(x)
    assert sal.shape == (4, 32, 32)
    assert float(sal.min()) >= 0 and float(sal.max()) <= 1
    assert torch.allclose(sal.flatten(1).amax(1), torch.ones(4))
    for b in range(4):
        torch.testing.assert_close(cam(x[b:b + 1])[0], sal[b], atol=1e-5, rtol=0)
    assert torch.equal(cam(x), sal)


def test_forward_passes_are_one_plus_k():
    cam = ClusCAM(small_cnn(), "6", k=7, chunk_size=4)
    cam(torch.randn(3, 3, 32, 32))
    assert cam.last_passes.forward == 8 and cam.last_passes.backward == 0 and cam.last_passes.partial == 0


def test_weights_discard_and_temperature_softmax():
    cam = ClusCAM(small_cnn(), "6", k=4, r=0.5, tau=0.5)
    scores = torch.tensor([[3.0, 1.0, 2.0, 5.0]])
    alpha = cam.weights(scores, torch.ones(1, 4, dtype=torch.bool))
    e3, e5 = math.exp(3 / 0.5), math.exp(5 / 0.5)
    torch.testing.assert_close(alpha, torch.tensor([[e3 / (e3 + e5), 0, 0, e5 / (e3 + e5)]]))
    # Ties at the cut keep the lower group index; empty groups are neither kept nor counted.
    tie = cam.weights(torch.tensor([[1.0, 1.0, 1.0, 1.0]]), torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(tie, torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    valid = torch.tensor([[True, True, False, True]])
    part = cam.weights(torch.tensor([[0.0, 2.0, 9.0, 1.0]]), valid)  # 3 valid -> floor(1.5) = 1 dropped
    assert part[0, 2] == 0 and part[0, 0] == 0 and part[0, 1] > part[0, 3] > 0
    # r = 0 keeps everything; the weights always sum to one.
    cam.r = 0.0
    assert torch.allclose(cam.weights(scores, torch.ones(1, 4, dtype=torch.bool)).sum(), torch.tensor(1.0))
    assert bool((cam.weights(scores, torch.ones(1, 4, dtype=torch.bool)) > 0).all())


def test_degenerate_cases_are_defined():
    model = small_cnn()
    with pytest.warns(UserWarning, match="exceeds the 48 representations"):
        cam = ClusCAM(model, "6", k=60, chunk_size=64)
        sal = cam(torch.randn(1, 3, 16, 16))
    assert cam.last_passes.forward == 49 and torch.isfinite(sal).all()
    constant = ClusCAM(model, "6", k=5)(torch.full((2, 3, 16, 16), 0.3))
    assert torch.isfinite(constant).all() and float(constant.min()) >= 0 and float(constant.max()) <= 1
    for bad in [dict(r=1.0), dict(r=-0.1), dict(tau=0.0), dict(k=0), dict(grouping="pixels"), dict(metric="cosine")]:
        with pytest.raises(ValueError):
            ClusCAM(model, "6", **bad)
    with pytest.raises(ValueError, match="no child"):
        ClusCAM(model, "layer4")
    with pytest.raises(ValueError, match="targets"):
        ClusCAM(model, "6", k=3)(torch.randn(2, 3, 16, 16), targets=[1])


def test_targets_change_the_explanation():
    model = small_cnn(2)
    x = torch.randn(2, 3, 32, 32)
    cam = ClusCAM(model, "6", k=8, r=0.25, tau=0.3)
    pred = model(x).argmax(1)
    assert torch.equal(cam(x, pred), cam(x))
    other = (pred + 1) % 5
    assert not torch.allclose(cam(x, other), cam(x))


def test_token_grouping_masks_are_grid_indicators():
    model = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.Flatten(2), nn.Identity(), nn.Flatten(), nn.Linear(8 * 16, 3)).eval()
    layer = LayerSpec("2", "tokens", grid=(4, 4))
    model[1] = nn.Sequential(nn.Flatten(2), _Transpose())
    model[3] = nn.Flatten()
    cam = ClusCAM(model, layer, k=4, grouping="tokens")
    x = torch.randn(2, 3, 32, 32)
    _, meta = cam.group_scores(x)
    up = F.interpolate(meta.maps, size=(32, 32), mode="bilinear", align_corners=False)
    for b in range(2):
        for j in range(4):
            ind = (meta.labels[b] == j).float().view(1, 1, 4, 4)
            ind_up = F.interpolate(ind, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
            expected = (ind_up - ind_up.min()) / (ind_up.max() - ind_up.min())
            torch.testing.assert_close(up[b, j], expected, atol=1e-5, rtol=0)
    assert cam(x).shape == (2, 32, 32)


class _Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


def _object_batch(gen, n, size=48, obj=12):
    """Noise images with a red (class 0) or blue (class 1) square at a random place; its box."""
    x = 0.4 * torch.randn(n, 3, size, size, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    pos = torch.randint(0, size - obj, (n, 2), generator=gen)
    for i in range(n):
        r, c = pos[i].tolist()
        x[i, :, r:r + obj, c:c + obj] = -1.0
        x[i, 2 * int(y[i]), r:r + obj, c:c + obj] = 2.0
    return x, y, pos


def test_trained_cnn_map_energy_sits_on_the_deciding_object():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = small_cnn(0, classes=2).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        x, y, _ = _object_batch(gen, 32)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y, pos = _object_batch(gen, 16)
    assert (model(x).argmax(1) == y).float().mean() > 0.9
    sal = ClusCAM(model, "6", k=12, r=0.4, tau=0.4)(x)
    box = torch.zeros_like(sal, dtype=torch.bool)
    for i, (r, c) in enumerate(pos.tolist()):
        box[i, r:r + 12, c:c + 12] = True
    energy = (sal * box).flatten(1).sum(1) / sal.flatten(1).sum(1)
    area = 144 / 48 ** 2
    assert float(energy.mean()) > 2.5 * area


@pytest.mark.parametrize("clustering", ["none", "spectral", "hdbscan"])
def test_ablation_clusterings_partition_and_average_members(clustering):
    model = small_cnn(4)
    x = torch.randn(2, 3, 24, 24)
    cam = ClusCAM(model, "6", k=5, clustering=clustering, chunk_size=64)
    scores, meta = cam.group_scores(x)
    k = meta.maps.shape[1]
    assert scores.shape == (2, k)
    if clustering == "none":
        assert k == 48 and bool(meta.valid.all())
    if clustering == "spectral":
        assert k == 5
    store = {}
    handle = model[6].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    model(x)
    handle.remove()
    up = F.interpolate(store["a"][:, :, None].flatten(0, 1), size=(24, 24), mode="bilinear", align_corners=False)
    up = up.view(2, 48, 24, 24)
    for b in range(2):
        for j in range(k):
            members = meta.labels[b] == j
            assert bool(members.any()) == bool(meta.valid[b, j])
            if members.any():
                normed = torch.stack([(m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else m
                                      for m in up[b][members]])
                got = F.interpolate(meta.maps[b, j][None, None], size=(24, 24), mode="bilinear", align_corners=False)[0, 0]
                torch.testing.assert_close(got, normed.mean(0), atol=1e-5, rtol=0)
    assert cam(x).shape == (2, 24, 24) and cam.last_passes.forward == 1 + k


def test_hdbscan_merges_clusters_closer_than_its_epsilon():
    """Fig. 5's HDBSCAN (cluster_selection_epsilon=0.05): tight triples 0.01 apart merge into one group,
    a triple 0.2 away stays apart.  This path of scikit-learn fails with NumPy >= 2.4 (scikit-learn#33219)."""
    rng = np.random.default_rng(0)
    centres = [(c + d, c + d) for c in (0.0, 1.0, 2.0) for d in (0.0, 0.01, 0.02, 0.2)]
    points = np.concatenate([rng.normal(centre, 0.001, (3, 2)) for centre in centres])
    expected = np.repeat([0, 0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5], 3)  # centre groups, in order of appearance
    labels, k = ClusCAM(small_cnn(), "6", clustering="hdbscan").partition(torch.tensor(points)[None])
    labels = labels[0].numpy()
    assert k == 6 and (labels >= 0).all()
    relabel = {old: new for new, old in enumerate(dict.fromkeys(labels.tolist()))}
    assert [relabel[v] for v in labels.tolist()] == expected.tolist()


def test_logit_weighting_and_clustering_phase():
    cam = ClusCAM(small_cnn(), "6", k=4, weighting="logit")
    scores = torch.tensor([[3.0, -1.0, 2.0, 5.0]])
    valid = torch.tensor([[True, True, False, True]])
    assert torch.equal(cam.weights(scores, valid), torch.tensor([[3.0, -1.0, 0.0, 5.0]]))
    cam(torch.randn(2, 3, 16, 16))
    assert set(cam.last_phases) == {"clustering"} and cam.last_phases["clustering"] > 0
    for bad in [dict(clustering="dbscan"), dict(weighting="uniform")]:
        with pytest.raises(ValueError):
            ClusCAM(small_cnn(), "6", **bad)


def test_bf16_scores_the_fp32_partition():
    model = small_cnn(5)
    x = torch.randn(2, 3, 32, 32)
    cam = ClusCAM(model, "6", k=6, precision="bf16")
    seen = []
    handle = model[0].register_forward_pre_hook(lambda m, i: seen.append(torch.is_autocast_enabled("cpu")))
    _, meta = cam.group_scores(x)
    sal = cam(x)
    handle.remove()
    assert seen == [False, True] * 2  # the capture pass in float32, the masked passes (one chunk) in bf16
    assert meta.maps.dtype == torch.float32 and sal.dtype == torch.float32
    torch.testing.assert_close(meta.maps, ClusCAM(model, "6", k=6).group_scores(x)[1].maps)  # the fp32 partition
    assert float(sal.min()) >= 0 and float(sal.max()) == 1 and cam.last_passes.forward == 7
    with pytest.raises(ValueError, match="precision"):
        ClusCAM(model, "6", precision="fp16")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, native):
    import cluscam.base as base

    monkeypatch.setattr(base, "native_cpu_bf16", lambda: native)
    cam = ClusCAM(small_cnn(5), "6", k=3, precision="bf16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cam(torch.randn(1, 3, 16, 16))
    slow = [w for w in caught if "without native bf16" in str(w.message)]
    assert bool(slow) is not native
    assert all(w.category is RuntimeWarning for w in slow)


def test_bf16_gradient_method_captures_in_bf16():
    from baselines.gradcam import GradCAM

    model = small_cnn(5)
    seen = []
    handle = model[0].register_forward_pre_hook(lambda m, i: seen.append(torch.is_autocast_enabled("cpu")))
    GradCAM(model, "6", precision="bf16")(torch.randn(2, 3, 32, 32))
    handle.remove()
    assert seen == [True]  # its one pass is all its cost
