"""Pixel-by-pixel image classification: permuted sequential digits and MNIST (Park et al. Supp. S2.1).

An image is flattened row-major, its pixels reordered by a fixed permutation
(``numpy.random.default_rng(perm_seed).permutation(n_pixels)``; ``perm_seed=None`` keeps the plain
sequential order) and fed one pixel per step (1 input, values in [0, 1]). The class (10 outputs, loss
"ce") is supervised at the final step only; targets are one-hot at every step. ``dt = 1.0`` is nominal.

* ``psdigits``: scikit-learn's bundled 8x8 digits (1,797 images, pixel values / 16), 64 steps, split into
  a fixed train/test partition (``test_fraction`` of the images, chosen with ``split_seed``).
* ``psmnist``: MNIST read from the four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) in ``data_dir`` or the
  directory named by the ``SPIKEDYN_MNIST`` environment variable; 784 steps, pixel values / 255. The
  files are read on first use, so building the task never fails for lack of data.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from .base import SPLITS, Task, TaskBatch, check_choice, check_int, final_step_scores, make_batch, one_hot

N_CLASSES = 10
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip-compressed if the file starts with the gzip magic)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes), {len(raw) - header} follow")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _permutation(n_pixels: int, perm_seed: int | None) -> np.ndarray:
    if perm_seed is None:
        return np.arange(n_pixels)
    return np.random.default_rng(perm_seed).permutation(n_pixels)


class _ImageSequence(Task):
    """Shared sampling and scoring; subclasses provide ``_split(split) -> (images [n, P] float, labels)``."""

    loss = "ce"
    dt = 1.0
    n_inputs = 1
    n_outputs = N_CLASSES

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def n_examples(self, split: str = "train") -> int:
        """Number of examples in ``split``."""
        return len(self._split(check_choice(split, "split", SPLITS))[1])

    def _as_batch(self, split: str, index: np.ndarray) -> TaskBatch:
        images, labels = self._split(split)
        pixels = images[index][:, self.perm].astype(np.float32) * np.float32(self.scale)  # [B, P]
        label = labels[index].astype(np.int64)
        T, B = pixels.shape[1], len(index)
        targets = one_hot(np.broadcast_to(label, (T, B)), N_CLASSES)
        mask = np.zeros_like(targets)
        mask[-1] = 1.0
        return make_batch(pixels.T[..., None], targets, mask, label=label, index=index)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        n = len(self._split(split)[1])
        return self._as_batch(split, rng.choice(n, size=batch_size, replace=batch_size > n))

    def dataset(self, split: str = "test", start: int = 0, stop: int | None = None) -> TaskBatch:
        """The examples ``start:stop`` of ``split`` in order (default: the whole split) for exact evaluation.

        Targets and mask take ``T * B * 10`` floats each; evaluate the 60,000 MNIST training images in
        chunks (``start``/``stop``) to bound memory.
        """
        check_choice(split, "split", SPLITS)
        n = len(self._split(split)[1])
        index = np.arange(n)[start:stop]
        if len(index) == 0:
            raise ValueError(f"empty selection start={start}, stop={stop} of the {n} {split} examples")
        return self._as_batch(split, index)

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        return final_step_scores(outputs, batch.meta["label"])


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # scikit-learn is only needed for this task

    data = load_digits()
    return data.images.reshape(len(data.target), -1).astype(np.float32), data.target.astype(np.int64)


class PSDigits(_ImageSequence):
    """Permuted sequential 8x8 digits (scikit-learn ``load_digits``): 64 steps x 1 input, 10 classes.

    Args:
        perm_seed: seed of the fixed pixel permutation (None: no permutation).
        split_seed: seed of the fixed train/test partition.
        test_fraction: fraction of the 1,797 images in the test split (0 < f < 1).
    """

    name = "psdigits"
    scale = 1.0 / 16.0

    def __init__(self, perm_seed: int | None = 0, split_seed: int = 0, test_fraction: float = 0.2) -> None:
        if perm_seed is not None:
            check_int(perm_seed, "perm_seed", 0)
        check_int(split_seed, "split_seed", 0)
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.perm = _permutation(64, perm_seed)
        self.split_seed, self.test_fraction = split_seed, float(test_fraction)
        self._remember(perm_seed=perm_seed, split_seed=split_seed, test_fraction=test_fraction)

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = _digits()
        order = np.random.default_rng(self.split_seed).permutation(len(labels))
        n_test = int(round(self.test_fraction * len(labels)))
        index = np.sort(order[:n_test] if split == "test" else order[n_test:])
        return images[index], labels[index]


def find_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, tuple[Path, Path]]:
    """Paths of the MNIST IDX files per split, looked up in ``data_dir`` or ``$SPIKEDYN_MNIST``.

    Also looks in the ``raw/`` and ``MNIST/raw/`` sub-directories (torchvision's layout).
    """
    root = data_dir if data_dir is not None else os.environ.get("SPIKEDYN_MNIST")
    names = ", ".join(n for pair in MNIST_FILES.values() for n in pair)
    how = "pass psmnist(data_dir=...) or set the SPIKEDYN_MNIST environment variable"
    if root is None:
        raise FileNotFoundError(f"no MNIST directory given: {how} to a folder with {names} (optionally .gz)")
    for folder in (Path(root), Path(root) / "raw", Path(root) / "MNIST" / "raw"):
        found = {}
        for split, pair in MNIST_FILES.items():
            paths = [next((p for p in (folder / n, folder / f"{n}.gz") if p.is_file()), None) for n in pair]
            if None not in paths:
                found[split] = (paths[0], paths[1])
        if len(found) == len(MNIST_FILES):
            return found
    raise FileNotFoundError(f"MNIST IDX files not found in {root}: expected {names} (optionally .gz); {how}")


class PSMNIST(_ImageSequence):
    """Permuted sequential MNIST: 784 steps x 1 input (pixel / 255), 10 classes; train = 60k, test = 10k.

    Args:
        data_dir: folder with the four MNIST IDX files (default: ``$SPIKEDYN_MNIST``); read on first use.
        perm_seed: seed of the fixed pixel permutation (None: no permutation, plain sequential MNIST).
    """

    name = "psmnist"
    scale = 1.0 / 255.0

    def __init__(self, data_dir: str | None = None, perm_seed: int | None = 0) -> None:
        if perm_seed is not None:
            check_int(perm_seed, "perm_seed", 0)
        self.data_dir, self.perm_seed = data_dir, perm_seed
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._remember(data_dir=data_dir, perm_seed=perm_seed)

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if not self._data:
            for name, (images, labels) in find_mnist(self.data_dir).items():
                x, y = read_idx(images), read_idx(labels)
                if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                    raise ValueError(f"{images} / {labels}: expected images [n, rows, cols] and labels [n]")
                self._data[name] = (x.reshape(len(x), -1), y)
        return self._data[split]

    @property
    def perm(self) -> np.ndarray:
        """The pixel order (needs the data to know the image size)."""
        return _permutation(self._split("test")[0].shape[1], self.perm_seed)
