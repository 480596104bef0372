"""What every dataset of the benchmark shares: records, items, batches and unreadable-image reporting.

A dataset is a list of :class:`Record` (id, label, where the image is, its boxes) sorted by id, and a
way to open an image.  Items are :class:`Sample`; :func:`collate` batches them into a :class:`Batch`.

Unreadable images never crash a run and are never dropped silently: the item of a file that cannot
be decoded carries ``error`` (and a zero image, no boxes), the batch marks it in ``valid`` and lists
it in :meth:`Batch.skipped`, so the runner can write a "skipped: corrupt" row naming the file and
count them in its summary.  :meth:`RecordDataset.scan` finds them all up front;
``on_error="raise"`` stops at the first one instead.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Literal, NamedTuple, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from .transforms import Preprocess, to_rgb

OnError = Literal["report", "raise"]
# What PIL raises for a missing, truncated, corrupt or unsupported file.
READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Record:
    """One image of a dataset.  boxes are (x_min, y_min, x_max, y_max) in the coordinates of an
    image of size ``box_frame`` (width, height); None means the image file's own size.  ``path`` names
    the image for reports (a file path or a locator such as ``hf:test[12]``)."""

    id: str
    label: int
    path: str
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    box_frame: tuple[int, int] | None = None


class Skipped(NamedTuple):
    """An image that could not be read: its id, file and the reason."""

    id: str
    path: str
    reason: str


@dataclass
class Sample:
    """One preprocessed item: image [3, H, W] (normalized), label, stable unique id, boxes [n, 4]
    in the preprocessed image's pixel coordinates (n may be 0), the file, and the read error if any."""

    image: torch.Tensor
    label: int
    id: str
    boxes: torch.Tensor
    path: str
    error: str | None = None


@dataclass
class Batch:
    """A batch of samples.  boxes: one [n_i, 4] tensor per image; padded_boxes [B, max n_i, 4] with
    the first num_boxes[i] rows of image i valid (the rest zero).  valid[i] is False for an image
    that could not be read (its row of ``images`` is zero): evaluate ``batch.select(batch.valid)``
    and record :meth:`skipped`."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    boxes: list[torch.Tensor]
    padded_boxes: torch.Tensor
    num_boxes: torch.Tensor
    paths: list[str]
    errors: list[str | None]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def valid(self) -> torch.Tensor:
        return torch.tensor([e is None for e in self.errors], dtype=torch.bool, device=self.images.device)

    def skipped(self) -> list[Skipped]:
        """The unreadable images of this batch."""
        return [Skipped(i, p, e) for i, p, e in zip(self.ids, self.paths, self.errors) if e is not None]

    def select(self, mask: torch.Tensor | Sequence[bool]) -> Batch:
        """The images where ``mask`` is True (e.g. ``valid``, or ``num_boxes == 1`` for EP and LE)."""
        keep = torch.as_tensor(mask, dtype=torch.bool).reshape(-1).cpu()
        if keep.numel() != len(self):
            raise ValueError(f"mask has {keep.numel()} entries for a batch of {len(self)}")
        idx = keep.nonzero().squeeze(1)
        rows = idx.tolist()
        take = lambda t: t[idx.to(t.device)]  # noqa: E731
        n = take(self.num_boxes)
        width = int(n.max()) if rows else 0
        return Batch(take(self.images), take(self.labels), [self.ids[i] for i in rows], [self.boxes[i] for i in rows],
                     take(self.padded_boxes)[:, :width], n, [self.paths[i] for i in rows], [self.errors[i] for i in rows])

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with ``fn`` applied to each of its tensors."""
        return replace(self, images=fn(self.images), labels=fn(self.labels), boxes=[fn(b) for b in self.boxes],
                       padded_boxes=fn(self.padded_boxes), num_boxes=fn(self.num_boxes))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The tensors on ``device``."""
        return self.apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Pinned tensors (called by a DataLoader with ``pin_memory=True``)."""
        return self.apply(torch.Tensor.pin_memory)


def collate(samples: Sequence[Sample]) -> Batch:
    """Batch samples (the ``collate_fn`` of a DataLoader)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    counts = torch.tensor([s.boxes.shape[0] for s in samples], dtype=torch.long)
    padded = torch.zeros(len(samples), int(counts.max()), 4)
    for i, s in enumerate(samples):
        padded[i, : s.boxes.shape[0]] = s.boxes
    return Batch(
        images=torch.stack([s.image for s in samples]),
        labels=torch.tensor([s.label for s in samples], dtype=torch.long),
        ids=[s.id for s in samples],
        boxes=[s.boxes for s in samples],
        padded_boxes=padded,
        num_boxes=counts,
        paths=[s.path for s in samples],
        errors=[s.error for s in samples],
    )


def shuffle_key(image_id: str, seed: int) -> str:
    """A record's place in the listing shuffled with ``seed``: the SHA-256 of seed and id, so the order
    is the same on every platform and version, and leaving records out keeps the others' order."""
    return hashlib.sha256(f"{int(seed)}:{image_id}".encode()).hexdigest()


def select_records(records: Sequence[Record], start: int = 0, stop: int | None = None,
                   single_box_only: bool = False, shuffle: int | None = None) -> list[Record]:
    """Records sorted by id (or, with a ``shuffle`` seed, by :func:`shuffle_key`), then the index range
    [start, stop) of that full listing, then (if asked) only those annotated with exactly one box.
    Ranging before filtering keeps a single-box run on the same images as the unfiltered run with the
    same range (the paper's EP/LE protocol).  Shuffled, a range is a simple random sample, nested in
    any longer range from the same start."""
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
    ordered = sorted(records, key=lambda r: r.id if shuffle is None else shuffle_key(r.id, shuffle))
    ids = [r.id for r in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("dataset ids are not unique")
    if start >= len(ordered) > 0:
        raise ValueError(f"start={start} (run.start) is past the end of the {len(ordered)} images; give a start "
                         f"below {len(ordered)}")
    chosen = ordered[start:stop]
    return [r for r in chosen if len(r.boxes) == 1] if single_box_only else chosen


class RecordDataset(Dataset):
    """A map-style dataset over :class:`Record` s.  Subclasses set ``classes`` and, when the images
    are not files, override :meth:`open_image`; a registered dataset states what the runner and the
    tables ask about it in the class attributes below."""

    classes: tuple[str, ...] = ()
    display_name: ClassVar[str] = ""  # the name in tables, e.g. "ILSVRC"
    root_arg: ClassVar[str | None] = None  # the constructor argument that ``dataset.root`` fills (None: no root)
    root_help: ClassVar[str] = ""  # how to get the data, said when ``dataset.root`` is missing
    has_boxes: ClassVar[bool] = False  # annotated object boxes: EP and LE (the localization tables)
    splits: ClassVar[tuple[str, ...]] = ()  # the splits ``dataset.options.split`` may name (none: one set)

    @classmethod
    def create(cls, **options: Any) -> RecordDataset:
        """The dataset built from ``options`` (the constructor's arguments; a factory for several sources)."""
        return cls(**options)

    def __init__(self, records: Sequence[Record], preprocess: Preprocess, on_error: OnError = "report") -> None:
        if on_error not in ("report", "raise"):
            raise ValueError(f"on_error must be 'report' or 'raise', got {on_error!r}")
        self.records = list(records)
        self.preprocess = preprocess
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    @property
    def num_boxes(self) -> list[int]:
        """Annotated boxes per image (before preprocessing)."""
        return [len(r.boxes) for r in self.records]

    def open_image(self, index: int) -> Image.Image:
        """The image of record ``index``, unread (PIL opens lazily)."""
        return Image.open(self.records[index].path)

    def read(self, index: int) -> Image.Image:
        """The fully decoded RGB image of record ``index``; raises one of READ_ERRORS if it is unreadable."""
        with self.open_image(index) as im:
            im.load()
            return to_rgb(im)

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        try:
            image = self.read(index)
        except READ_ERRORS as e:
            reason = f"{type(e).__name__}: {e}"
            if self.on_error == "raise":
                raise ValueError(f"cannot read image {rec.path!r} (id {rec.id}): {reason}") from e
            h, w = self.preprocess.size
            return Sample(torch.zeros(3, h, w), rec.label, rec.id, torch.zeros(0, 4), rec.path, reason)
        boxes = torch.tensor(rec.boxes, dtype=torch.float32).reshape(-1, 4)
        if rec.box_frame is not None and tuple(rec.box_frame) != image.size:  # annotation made on another size
            fw, fh = rec.box_frame
            boxes = boxes * torch.tensor([image.width / fw, image.height / fh] * 2)
        tensor, boxes = self.preprocess(image, boxes)
        return Sample(tensor, rec.label, rec.id, boxes, rec.path)

    def scan(self) -> list[Skipped]:
        """Decode every image once and list the unreadable ones (slow on a large set: one full read)."""
        bad = []
        for i, rec in enumerate(self.records):
            try:
                self.read(i)
            except READ_ERRORS as e:
                bad.append(Skipped(rec.id, rec.path, f"{type(e).__name__}: {e}"))
        return bad
