"""The field's faithfulness tests beyond the paper's metrics, one value per image, batched on the device.

- **Deletion / Insertion** (Petsiuk et al., RISE, BMVC 2018, Sec. 4.1): the target class's softmax
  probability as the pixels are removed (replaced by a substrate) or revealed (on the substrate) in the
  map's order, most relevant first, ``step`` pixels at a time; the score is the curve's area by RISE's
  trapezoid, (sum - first / 2 - last / 2) / (points - 1).  RISE's defaults: 224 pixels per step,
  deletion onto zeros of the normalized input (the mean colour), insertion from a Gaussian blur (kernel
  11, sigma 5).  Lower deletion and higher insertion are better.
- **ROAD** (Rong et al., ICML 2022): remove pixels and impute them by noisy linear imputation (each
  removed pixel the weighted mean of its 8 neighbours, 1/6 on the sides and 1/12 on the diagonals, solved
  for all removed pixels at once, plus Gaussian noise of std 0.01), most (MoRF) or least (LeRF) relevant
  first, and average the change of the target's probability over percentiles; pytorch-grad-cam 1.5.7's
  convention: at percentile q, MoRF keeps the pixels whose map value is below the map's q-th percentile
  (it removes 100 - q %), LeRF those whose 1 - value is below the q-th percentile of 1 - map;
  percentiles 10, 20, ..., 90; combined = (LeRF - MoRF) / 2.  Lower MoRF, higher LeRF and combined are
  better.  The linear system (a Dirichlet problem on the pixel grid) is solved by conjugate gradients on a
  GPU, by scipy's sparse LU on a CPU (as pytorch-grad-cam does), to the same solution.
- **Model-parameter randomization** (Adebayo et al., NeurIPS 2018, Sec. 3.1; Quantus's MPRT): the model's
  stages re-initialized cascading from the logits down, each module by its ``reset_parameters`` seeded as
  Quantus 0.6.0 does (``seed + 1`` before every reset); per stage the Spearman rank correlation and the
  SSIM between the original map and the randomized model's map of the same class.  A method whose maps
  stay close to the original when every stage is random does not explain the model.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cluscam.base import Explainer, as_logits
from cluscam.ops import baseline_value

Curve = Literal["deletion", "insertion"]
Order = Literal["morf", "lerf"]
RISE_STEP = 224  # pixels per step (RISE's evaluation at 224 x 224)
SUBSTRATES = ("mean", "black", "blur")
ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # pytorch-grad-cam 1.5.7's ROAD*Average / ROADCombined


# -- shared ------------------------------------------------------------------------------------------
def _maps(saliency: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    maps = saliency[:, 0] if saliency.dim() == 4 and saliency.shape[1] == 1 else saliency
    if images.dim() != 4 or maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"saliency {tuple(saliency.shape)} does not match images {tuple(images.shape)}: "
                         f"upsample the maps to the input size first")
    return maps.to(images.device).float()


@torch.no_grad()
def probabilities(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """Softmax probability [N] of class ``targets[i]`` on ``inputs[i]``, ``chunk_size`` inputs per pass."""
    out = [as_logits(model(inputs[i:i + chunk_size])).float().softmax(1).gather(1, targets[i:i + chunk_size, None])[:, 0]
           for i in range(0, len(inputs), chunk_size)]
    return torch.cat(out)


def _targets(model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
    """Class indices [B]: ``targets`` as given (no pass), else the prediction (one pass)."""
    if targets is not None:
        t = torch.as_tensor(targets, device=images.device).long().reshape(-1)
        if t.numel() != images.shape[0]:
            raise ValueError(f"got {t.numel()} targets for a batch of {images.shape[0]} images")
        return t
    with torch.no_grad():
        return Explainer.resolve_targets(as_logits(model(images)), None)


# -- Deletion / Insertion (RISE) ---------------------------------------------------------------------
def gaussian_blur(images: torch.Tensor, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion substrate: a separable Gaussian blur (``kernel`` taps, ``sigma``), zero padding."""
    x = torch.arange(kernel, dtype=images.dtype, device=images.device) - (kernel - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    c = images.shape[1]
    out = F.conv2d(images, g.view(1, 1, 1, -1).expand(c, 1, 1, kernel).contiguous(), padding=(0, kernel // 2), groups=c)
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, kernel, 1).contiguous(), padding=(kernel // 2, 0), groups=c)


def substrate(images: torch.Tensor, kind: str, pixel_mean: Sequence[float] | None = None,
              pixel_std: Sequence[float] | None = None) -> torch.Tensor:
    """What removed pixels become (deletion) or what the image starts from (insertion): ``blur`` (RISE's
    Gaussian), ``mean`` (0 in normalized space, the mean colour) or ``black`` (needs the model's mean/std)."""
    if kind == "blur":
        return gaussian_blur(images)
    if kind == "mean":
        return torch.zeros_like(images)
    if kind == "black":  # the explainers' black baseline: (0 - mean) / std
        return baseline_value("black", pixel_mean, pixel_std, images).expand_as(images).clone()
    raise ValueError(f"unknown substrate {kind!r}; use 'blur', 'mean' or 'black'")


def curve_steps(n_pixels: int, step: int = RISE_STEP) -> int:
    """Steps of a Deletion / Insertion curve removing ``step`` pixels each: ceil(n_pixels / step); the curve has
    one point more (the start) and costs that many forward passes per image."""
    return -(-n_pixels // step)


@torch.no_grad()
def causal_curve(model: nn.Module, images: torch.Tensor, saliency: torch.Tensor, targets=None, *,
                 mode: Curve = "deletion", step: int = RISE_STEP, base: torch.Tensor | None = None,
                 seed: int = 0, chunk_size: int = 64) -> torch.Tensor:
    """The Deletion or Insertion curve [B, steps + 1]: the target's probability after 0, step, 2 step, ...
    of the most relevant pixels (the map's descending order, ties in a random order drawn with ``seed``, so
    that a constant map is a random order) are removed onto ``base`` (deletion) or revealed on it
    (insertion); ``base`` defaults to RISE's (mean colour for deletion, blur for insertion)."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"unknown curve {mode!r}; use 'deletion' or 'insertion'")
    if step < 1:
        raise ValueError(f"step={step} must be a positive number of pixels")
    maps = _maps(saliency, images)
    t = _targets(model, images, targets)
    if base is None:
        base = substrate(images, "mean" if mode == "deletion" else "blur")
    b, hw = maps.shape[0], maps[0].numel()
    shuffle = torch.randperm(hw, generator=torch.Generator().manual_seed(seed)).to(maps.device)
    order = shuffle[torch.sort(maps.reshape(b, -1)[:, shuffle], dim=1, descending=True, stable=True).indices]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(hw, device=maps.device).expand(b, -1))
    n = curve_steps(hw, step) + 1
    start, end = (images, base) if mode == "deletion" else (base, images)
    points = []
    for i in range(b):  # one image's steps form the batch of passes
        changed = (rank[i][None] < (torch.arange(n, device=maps.device) * step)[:, None]).view(n, 1, *maps.shape[1:])
        inputs = torch.where(changed, end[i:i + 1], start[i:i + 1])
        points.append(probabilities(model, inputs, t[i].expand(n), chunk_size))
    return torch.stack(points)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """RISE's area under curves [B, n]: (sum - first / 2 - last / 2) / (n - 1)."""
    return (curve.sum(1) - curve[:, 0] / 2 - curve[:, -1] / 2) / (curve.shape[1] - 1)


# -- ROAD --------------------------------------------------------------------------------------------
def _neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """sum_j w_j x_j over the 8 neighbours of every pixel of [N, 1, H, W] (zero outside the image); shifted
    slices, fast in float64 on any device."""
    h, w = x.shape[-2:]
    pad = F.pad(x, (1, 1, 1, 1))
    sides = pad[..., 0:h, 1:w + 1] + pad[..., 2:h + 2, 1:w + 1] + pad[..., 1:h + 1, 0:w] + pad[..., 1:h + 1, 2:w + 2]
    corners = pad[..., 0:h, 0:w] + pad[..., 0:h, 2:w + 2] + pad[..., 2:h + 2, 0:w] + pad[..., 2:h + 2, 2:w + 2]
    return sides / 6 + corners / 12


_OFFSETS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
            (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))  # (dy, dx, weight)


def _solve_cg(x: torch.Tensor, missing: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """The imputed values on the removed pixels of [N, 1, H, W] (float64), all problems at once by conjugate
    gradients on (D - W_MM) u = W_MK v, symmetric positive definite where each removed region touches a kept pixel."""
    degree = _neighbour_sum(torch.ones_like(x[:1]))  # the in-image neighbours' weights

    def operator(u: torch.Tensor) -> torch.Tensor:
        return missing * (degree * u - _neighbour_sum(missing * u))

    rhs = missing * _neighbour_sum((1 - missing) * x)
    u, r = torch.zeros_like(x), rhs.clone()
    p, rs = r.clone(), (r * r).sum((1, 2, 3))
    stop = (tol * rhs.flatten(1).norm(dim=1)) ** 2
    for _ in range(max_iter):
        if bool((rs <= stop).all()):
            break
        ap = operator(p)
        pap = (p * ap).sum((1, 2, 3))
        alpha = torch.where(pap > 0, rs / pap.clamp_min(1e-300), torch.zeros_like(rs)).view(-1, 1, 1, 1)
        u, r = u + alpha * p, r - alpha * ap
        new = (r * r).sum((1, 2, 3))
        p = r + torch.where(rs > 0, new / rs.clamp_min(1e-300), torch.zeros_like(rs)).view(-1, 1, 1, 1) * p
        rs = new
    return u


def _solve_sparse(x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """The same system for one image [C, H, W] (removed pixels ``missing`` [H, W]) by scipy's sparse LU, one
    factorization for the C channels: faster than conjugate gradients on a CPU."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = x.shape
    miss = missing.cpu().numpy()
    ys, xs = np.nonzero(miss)
    var = np.full((h, w), -1)
    var[ys, xs] = np.arange(len(ys))
    v = x.cpu().double().numpy()
    rows, cols, vals = [np.arange(len(ys))], [np.arange(len(ys))], [np.zeros(len(ys))]
    rhs = np.zeros((len(ys), c))
    for dy, dx, weight in _OFFSETS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        vals[0][inside] += weight  # the diagonal: the in-image neighbours' weights
        i, ny, nx = np.nonzero(inside)[0], ny[inside], nx[inside]
        unknown = miss[ny, nx]
        rows.append(i[unknown]), cols.append(var[ny[unknown], nx[unknown]]), vals.append(np.full(unknown.sum(), -weight))
        rhs[i[~unknown]] += weight * v[:, ny[~unknown], nx[~unknown]].T
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(ys),) * 2).tocsc()
    u = spsolve(a, rhs).reshape(len(ys), c)
    out = torch.zeros(c, h, w, dtype=torch.float64)
    out[:, torch.from_numpy(ys), torch.from_numpy(xs)] = torch.from_numpy(np.ascontiguousarray(u.T))
    return out.to(x.device)


def impute(images: torch.Tensor, keep: torch.Tensor, noise: float = 0.01, generator: torch.Generator | None = None,
           solver: Literal["auto", "cg", "sparse"] = "auto", tol: float = 1e-8, max_iter: int = 5000) -> torch.Tensor:
    """ROAD's noisy linear imputation of images [B, C, H, W] outside ``keep`` [B, H, W]: every removed pixel
    equals the weighted mean of its in-image neighbours (removed ones included), all solved jointly (``cg``:
    conjugate gradients on the device to relative residual ``tol``; ``sparse``: scipy's sparse LU; ``auto``:
    sparse LU on a CPU, CG elsewhere), then ``noise`` x N(0, 1) added to the removed pixels (drawn per image as
    [C, removed pixels in row-major order], from ``generator``).  Kept pixels are unchanged."""
    b, c, h, w = images.shape
    x = images.double()  # float64: the solve converges to tol
    missing = ~keep
    if solver == "auto":
        solver = "sparse" if images.device.type == "cpu" else "cg"
    if solver == "cg":
        m = missing.to(x).repeat_interleave(c, 0)[:, None]
        u = _solve_cg(x.reshape(b * c, 1, h, w), m, tol, max_iter).reshape(b, c, h, w)
    elif solver == "sparse":
        u = torch.stack([_solve_sparse(x[i], missing[i]) for i in range(b)])
    else:
        raise ValueError(f"unknown solver {solver!r}; use 'auto', 'cg' or 'sparse'")
    out = torch.where(missing[:, None], u, x)
    if noise:
        for i in range(b):  # the draws of each image in the order of its removed pixels
            where = missing[i].reshape(-1)
            flat = out[i].reshape(c, -1)
            flat[:, where] += noise * torch.randn(c, int(where.sum()), generator=generator).to(flat)
    return out.to(images.dtype)


def road_keep(maps: torch.Tensor, percentile: float, order: Order) -> torch.Tensor:
    """The pixels ROAD keeps at ``percentile`` (pytorch-grad-cam 1.5.7): MoRF, value below the map's
    percentile; LeRF, 1 - value below the percentile of 1 - map (numpy's linear interpolation)."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"unknown ROAD order {order!r}; use 'morf' or 'lerf'")
    m = maps.double() if order == "morf" else 1 - maps.double()
    q = torch.quantile(m.flatten(1), percentile / 100, dim=1).view(-1, *[1] * (m.dim() - 1))
    return m < q


@torch.no_grad()
def road(model: nn.Module, images: torch.Tensor, saliency: torch.Tensor, targets=None, *, order: Order = "morf",
         percentiles: Sequence[float] = ROAD_PERCENTILES, noise: float = 0.01, seed: int = 0,
         chunk_size: int = 64) -> torch.Tensor:
    """ROAD [B]: the target's probability on the imputed image minus on the image, averaged over
    ``percentiles``; one forward pass per percentile and image (besides the image's own)."""
    maps = _maps(saliency, images)
    t = _targets(model, images, targets)
    p = probabilities(model, images, t, chunk_size)
    generator = torch.Generator().manual_seed(seed)
    changes = [probabilities(model, impute(images, road_keep(maps, q, order), noise, generator), t, chunk_size) - p
               for q in percentiles]
    return torch.stack(changes).mean(0)


# -- model-parameter randomization ----------------------------------------------------------------------
def default_stages(model: nn.Module) -> list[str]:
    """The stages to randomize, top (logits) first: the model's top-level children that hold parameters,
    a child that is a sequence of 3 or more parameterized blocks (``blocks``, ``features``, ``stages``...)
    split into its blocks."""
    stages = []
    for name, child in model.named_children():
        parts = [(f"{name}.{n}", m) for n, m in child.named_children() if any(True for _ in m.parameters())]
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(parts) >= 3:
            stages += [n for n, _ in parts]
        elif any(True for _ in child.parameters()):
            stages.append(name)
    return stages[::-1]


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with its modules' training flags.  Modules that cache tensors computed from
    their parameters (timm's LeViT and EfficientFormer attention biases, filled by a forward in eval mode and
    not copyable when that forward tracked gradients) drop the caches on ``train()``, which runs first; the
    flags of ``model`` are restored after."""
    modes = {name: m.training for name, m in model.named_modules()}
    model.train()
    try:
        out = copy.deepcopy(model)
    finally:
        for name, m in model.named_modules():
            m.training = modes[name]
    for name, m in out.named_modules():
        m.training = modes[name]
    return out


def cascading_randomization(model: nn.Module, stages: Sequence[str], seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """A copy of ``model`` with ``stages[0]``, then ``stages[0..1]``, ... re-initialized (cascading from the top):
    each module of a stage with ``reset_parameters``, last first, after ``torch.manual_seed(seed + 1)``
    (Quantus 0.6.0's MPRT; the global generator is restored after each reset).  The copy is re-initialized
    on the CPU and lives on the model's device; one copy, changed in place from stage to stage."""
    device = next(model.parameters()).device
    random = _copy(model).cpu()
    names = dict(random.named_modules())
    for stage in stages:
        if stage not in names:
            raise ValueError(f"randomization stage {stage!r} is not a module of the model; stages are module "
                             f"paths such as {', '.join(default_stages(model)[:3])}")
        modules = [m for _, m in names[stage].named_modules() if hasattr(m, "reset_parameters")][::-1]
        for module in modules:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                module.reset_parameters()
        yield stage, random.to(device)
        random.cpu()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties share their mean rank, as scipy's rankdata) of each row of [B, N]."""
    s = torch.sort(x, dim=1).values
    lo = torch.searchsorted(s, x.contiguous(), right=False)
    hi = torch.searchsorted(s, x.contiguous(), right=True)
    return (lo + hi + 1).double() / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation [B] of maps [B, ...] (average ranks for ties); NaN for a constant map."""
    ra, rb = _ranks(a.flatten(1).double()), _ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def ssim(a: torch.Tensor, b: torch.Tensor, win: int = 7) -> torch.Tensor:
    """SSIM [B] of maps [B, H, W] as scikit-image's ``structural_similarity`` (Wang et al. 2004): a uniform
    ``win`` x ``win`` window, sample covariances, K1 = 0.01, K2 = 0.03, the mean over the windows inside
    the image; data range max - min over both maps (Quantus's choice)."""
    a, b = a.double()[:, None], b.double()[:, None]
    rng = torch.maximum(a.amax((1, 2, 3)), b.amax((1, 2, 3))) - torch.minimum(a.amin((1, 2, 3)), b.amin((1, 2, 3)))
    c1, c2 = ((0.01 * rng) ** 2).view(-1, 1, 1, 1), ((0.03 * rng) ** 2).view(-1, 1, 1, 1)
    mean = lambda x: F.avg_pool2d(x, win, stride=1)  # noqa: E731  (the windows inside the image)
    n = win * win
    ma, mb = mean(a), mean(b)
    va, vb = (mean(a * a) - ma * ma) * n / (n - 1), (mean(b * b) - mb * mb) * n / (n - 1)
    cov = (mean(a * b) - ma * mb) * n / (n - 1)
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return s.mean((1, 2, 3))


def randomization_check(explain: Callable[[nn.Module], torch.Tensor], model: nn.Module, stages: Sequence[str],
                        seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Per stage (cascading, :func:`cascading_randomization`) the Spearman correlation and SSIM [B] between
    ``explain(model)`` and ``explain(randomized model)``: {stage: {"spearman": ..., "ssim": ...}}.
    ``explain`` maps a model to saliency maps [B, H, W] of the original targets."""
    original = explain(model).float()
    out = {}
    for stage, random in cascading_randomization(model, stages, seed):
        maps = explain(random).float()
        out[stage] = {"spearman": spearman(original, maps), "ssim": ssim(original, maps)}
    return out


# -- rows of the runner ---------------------------------------------------------------------------------
TESTS = ("deletion", "insertion", "road")


def image_tests(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                tests: Sequence[str], *, step: int = RISE_STEP, deletion_substrate: str = "mean",
                insertion_substrate: str = "blur", percentiles: Sequence[float] = ROAD_PERCENTILES,
                noise: float = 0.01, seed: int = 0, pixel_mean: Sequence[float] | None = None,
                pixel_std: Sequence[float] | None = None, chunk_size: int = 64) -> dict[str, torch.Tensor]:
    """Per-image columns of ``tests`` (:data:`TESTS`): ``deletion`` and ``insertion`` (AUC), ``road_morf``,
    ``road_lerf`` and ``road_combined``, and ``faithfulness_forward``, the forward passes they ran per image."""
    unknown = sorted(set(tests) - set(TESTS))
    if unknown:
        raise ValueError(f"unknown faithfulness test(s) {', '.join(unknown)}; metrics.faithfulness takes {', '.join(TESTS)}")
    out: dict[str, torch.Tensor] = {}
    passes = 0
    for mode, kind in (("deletion", deletion_substrate), ("insertion", insertion_substrate)):
        if mode in tests:
            base = substrate(images, kind, pixel_mean, pixel_std)
            out[mode] = curve_auc(causal_curve(model, images, maps, targets, mode=mode, step=step, base=base,
                                               seed=seed, chunk_size=chunk_size))
            passes += curve_steps(maps[0].numel(), step) + 1
    if "road" in tests:
        for order in ("morf", "lerf"):
            out[f"road_{order}"] = road(model, images, maps, targets, order=order, percentiles=percentiles, noise=noise,
                                        seed=seed, chunk_size=chunk_size)
            passes += 1 + len(percentiles)
        out["road_combined"] = (out["road_lerf"] - out["road_morf"]) / 2
    out["faithfulness_forward"] = torch.full((images.shape[0],), float(passes))
    return out
