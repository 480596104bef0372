"""Image preprocessing that moves the ground-truth boxes with the pixels.

Box convention (every loader and :mod:`benchmarks.metrics` use it): a box is
``(x_min, y_min, x_max, y_max)`` in continuous pixel coordinates of its image, the top-left corner of
the image at (0, 0) and the bottom-right corner at (W, H); pixel (row i, column j) covers
[j, j+1) x [i, i+1).  Resizing by s scales a coordinate by s exactly; cropping shifts it.  Annotation
files (Kaggle CSV, VOC XML) are read as given in this convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

ResizeMode = Literal["stretch", "resize_crop"]
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}
# Pillow modes with samples wider than 8 bits -> the top of their format's range ("I" is where Pillow
# puts 16-bit PNG and TIFF samples too; "F" images are taken as [0, 1]).
_WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB.  Pillow's ``convert("RGB")`` clips wide samples (16-bit, 32-bit, float) at
    255, which turns a 16-bit scan white; they are scaled instead from [0, top of the format's range],
    or from the image's own min and max when its values leave that range.  The format's range, not
    each image's min/max, keeps the file's brightness (a dark scan stays dark, as in an 8-bit export)
    and scales all images of a set alike.  NaN or infinite samples raise a ValueError (a skipped row)."""
    top = _WIDE_MODES.get(image.mode)
    if top is None:
        return image.convert("RGB")
    x = np.asarray(image, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"the {image.mode} image holds NaN or infinite values")
    lo, hi = (0.0, top) if x.min() >= 0 and x.max() <= top else (x.min(), x.max())
    return Image.fromarray(np.round((x - lo) / ((hi - lo) or 1.0) * 255).astype(np.uint8)).convert("RGB")


@dataclass(frozen=True)
class Geometry:
    """Where an image of a given size goes: resized to ``resized`` (width, height), then the window
    of the output size at ``offset`` (left, top) is kept."""

    resized: tuple[int, int]
    offset: tuple[int, int]


@dataclass(frozen=True)
class Preprocess:
    """RGB conversion (:func:`to_rgb`), resize, [0, 1] scaling and per-channel normalization.

    size: output (H, W) (an int means square).  mode: ``stretch`` resizes straight to H x W (the
    paper, Appendix B: "All images are resized to 224 x 224"); ``resize_crop`` is timm's eval
    transform: for a square output the shorter side goes to floor(size / crop_pct) keeping the aspect
    ratio (torchvision's rounding), otherwise both sides go to floor(side / crop_pct); then the
    centre H x W window is kept (torchvision's centre-crop offsets).  mean, std: normalization of
    the [0, 1] RGB values (default ImageNet's, as in the paper).  interpolation: PIL resampling."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    mode: ResizeMode = "stretch"
    crop_pct: float = 0.875
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(int(s) for s in self.size)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive sides, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values with std > 0, got mean={self.mean}, std={self.std}")
        if self.mode not in ("stretch", "resize_crop"):
            raise ValueError(f"unknown resize mode {self.mode!r}; use 'stretch' or 'resize_crop'")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {sorted(_RESAMPLE)}")

    def geometry(self, width: int, height: int) -> Geometry:
        """The resize and crop applied to a ``width`` x ``height`` image."""
        h, w = self.size
        if self.mode == "stretch":
            return Geometry((w, h), (0, 0))
        if h == w:  # timm: an int scale size, torchvision Resize(int) keeps the aspect ratio
            short = math.floor(h / self.crop_pct)
            if width <= height:
                rw, rh = short, int(short * height / width)
            else:
                rw, rh = int(short * width / height), short
        else:
            rw, rh = math.floor(w / self.crop_pct), math.floor(h / self.crop_pct)
        return Geometry((rw, rh), (int(round((rw - w) / 2.0)), int(round((rh - h) / 2.0))))

    def transform_boxes(self, boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Boxes [n, 4] of a ``width`` x ``height`` image in the output image's coordinates: scaled,
        shifted by the crop, clipped to the output; boxes left with no area are dropped."""
        g = self.geometry(width, height)
        h, w = self.size
        scale = torch.tensor([g.resized[0] / width, g.resized[1] / height] * 2, dtype=torch.float32)
        shift = torch.tensor([g.offset[0], g.offset[1]] * 2, dtype=torch.float32)
        limit = torch.tensor([w, h, w, h], dtype=torch.float32)
        out = (boxes.float().reshape(-1, 4) * scale - shift).clamp(min=torch.zeros(4), max=limit)
        return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]

    def normalize(self, rgb: np.ndarray) -> torch.Tensor:
        """A uint8 [H, W, 3] array as a normalized float tensor [3, H, W]."""
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div_(255)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def __call__(self, image: Image.Image, boxes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalized image [3, H, W], boxes [n, 4] in its coordinates) for a PIL image and its boxes."""
        width, height = image.size
        g = self.geometry(width, height)
        h, w = self.size
        out = to_rgb(image)
        if g.resized != (width, height):
            out = out.resize(g.resized, _RESAMPLE[self.interpolation])
        if g.resized != (w, h):
            out = out.crop((g.offset[0], g.offset[1], g.offset[0] + w, g.offset[1] + h))
        boxes = torch.zeros(0, 4) if boxes is None else boxes
        return self.normalize(np.asarray(out)), self.transform_boxes(boxes, width, height)


def as_preprocess(spec: Preprocess | Mapping | Sequence[int] | int | None,
                  default_size: int | tuple[int, int] = 224) -> Preprocess:
    """A :class:`Preprocess` from a spec, a mapping of its fields (a config), a size, or None (defaults)."""
    if isinstance(spec, Preprocess):
        return spec
    if spec is None:
        return Preprocess(size=default_size)
    if isinstance(spec, Mapping):
        return Preprocess(**dict(spec))
    return Preprocess(size=spec)
