"""Real photographs that install with scikit-image, for the demo: no download, no labels, no boxes."""
from __future__ import annotations

from pathlib import Path

from .base import OnError, Record, RecordDataset, select_records
from .transforms import Preprocess, as_preprocess

# Colour photographs bundled in scikit-image's wheel (skimage/data), with what they show.
PHOTOS: dict[str, str] = {
    "astronaut.png": "astronaut (Eileen Collins)",
    "chelsea.png": "a tabby cat",
    "coffee.png": "a cup of coffee",
    "motorcycle_left.png": "a motorcycle",
    "rocket.jpg": "a rocket on its launch pad",
}


class PackagePhotos(RecordDataset):
    """The photographs of :data:`PHOTOS` from the installed scikit-image (label -1: unknown; the
    explained class is the model's prediction).  start, stop: index range of the sorted listing."""

    display_name = "photos"

    def __init__(self, preprocess: Preprocess | None = None, *, start: int = 0, stop: int | None = None,
                 on_error: OnError = "report") -> None:
        try:
            import skimage
        except ImportError as err:
            raise ImportError("the photos dataset needs scikit-image: pip install scikit-image") from err
        folder = Path(skimage.__file__).parent / "data"
        records = [Record(Path(name).stem, -1, str(folder / name)) for name in PHOTOS]
        super().__init__(select_records(records, start, stop), as_preprocess(preprocess), on_error)
