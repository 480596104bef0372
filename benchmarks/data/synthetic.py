"""A deterministic synthetic dataset for smoke tests: one coloured object per image with its box."""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from .base import OnError, Record, RecordDataset, select_records
from .transforms import Preprocess, as_preprocess


class SyntheticObjects(RecordDataset):
    """``n`` images of ``size`` x ``size`` pixels: uniform noise in 0..95 on each channel, and one object
    whose colour (hue k / n_classes, full saturation and value) and shape (square for even k, disc for
    odd k) give its class k.  Image i draws its class, object side (size//5 .. size//2), place and
    noise from ``numpy.random.default_rng([seed, i])``: items do not depend on access order.  The box
    is the tight box around the object's pixels (pixel centres inside the shape).  Default
    preprocessing keeps the size (no resampling) and normalizes with ImageNet statistics.  start, stop:
    the index range [start, stop) of the n images (ids synthetic_000000, ...)."""

    display_name = "synthetic"  # as the tables have always named it
    has_boxes = True

    def __init__(self, n: int = 32, size: int = 64, n_classes: int = 4, seed: int = 0,
                 preprocess: Preprocess | None = None, *, start: int = 0, stop: int | None = None,
                 on_error: OnError = "report") -> None:
        if n < 1 or size < 8 or n_classes < 1:
            raise ValueError(f"need n >= 1, size >= 8 and n_classes >= 1, got n={n}, size={size}, n_classes={n_classes}")
        self.size, self.n_classes, self.seed = size, n_classes, seed
        self.classes = tuple(f"{'square' if k % 2 == 0 else 'disc'}_{k}" for k in range(n_classes))
        self.colours = [tuple(round(255 * c) for c in colorsys.hsv_to_rgb(k / n_classes, 1.0, 1.0)) for k in range(n_classes)]
        records = []
        for i in range(n):
            label, mask, _ = self._draw(i)
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
            records.append(Record(f"synthetic_{i:06d}", label, f"synthetic:{seed}:{i}", (box,)))
        super().__init__(select_records(records, start, stop), as_preprocess(preprocess, size), on_error)

    def _draw(self, i: int) -> tuple[int, np.ndarray, np.random.Generator]:
        """Class, object mask [size, size] and the generator (positioned for the noise) of image i."""
        rng = np.random.default_rng([self.seed, i])
        label = int(rng.integers(self.n_classes))
        side = int(rng.integers(max(2, self.size // 5), self.size // 2 + 1))
        x0, y0 = (int(v) for v in rng.integers(0, self.size - side + 1, size=2))
        yy, xx = np.mgrid[0:self.size, 0:self.size] + 0.5  # pixel centres
        if label % 2 == 0:
            mask = (xx >= x0) & (xx < x0 + side) & (yy >= y0) & (yy < y0 + side)
        else:
            r = side / 2
            mask = (xx - x0 - r) ** 2 + (yy - y0 - r) ** 2 <= r * r
        return label, mask, rng

    def open_image(self, index: int) -> Image.Image:
        label, mask, rng = self._draw(int(self.records[index].id.rsplit("_", 1)[1]))
        pixels = rng.integers(0, 96, size=(self.size, self.size, 3), dtype=np.uint8)
        pixels[mask] = self.colours[label]
        return Image.fromarray(pixels)
