"""Image tasks: `mnist`, `fashion_mnist`, `cifar10`, read from torchvision's folder layout under data_dir.

The files are the ones torchvision's `datasets.MNIST` / `FashionMNIST` / `CIFAR10` download, in the same
folders (`<data_dir>/MNIST/raw/`, `<data_dir>/FashionMNIST/raw/`, `<data_dir>/cifar-10-batches-py/`), so a
data directory torchvision filled works here and the other way round. torchvision is used to download
(only when the spec says `download = true`); reading is done here:

- IDX files (MNIST format, raw or .gz) are parsed with numpy: a header and a byte array, nothing to run.
- CIFAR batches are Python pickles. torchvision opens them with a plain `pickle.load`, which runs whatever
  a file asks for; here they go through an unpickler that only builds numpy arrays, lists and dicts and
  refuses everything else, so a tampered file fails instead of running code.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.config import TrainConfig
from engine.files import private_dir
from engine.spec import TaskSpec
from engine.trainer.tasks import TaskData, TaskError, split_indices, standardize

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_vision_task(task: TaskSpec, device: torch.device) -> TaskData:
    """Train/val split of the task's training set (the test set stays unseen), standardized, on device."""
    root = Path(task.data_dir).expanduser()
    if task.name == "cifar10":
        images, labels = _cifar_train(root, task.download)
        test = _cifar_test(root)
        channel_dims: tuple[int, ...] = (0, 2, 3)  # standardize each colour channel
        augment = random_crop_flip
    else:
        images, labels = _idx_train(root, task.name, task.download)
        test = _idx_test(root, task.name)
        images = images.unsqueeze(1)  # (N, 1, 28, 28)
        test = None if test is None else (test[0].unsqueeze(1), test[1])
        channel_dims = (0, 1, 2, 3)
        augment = None
    train_idx, val_idx = split_indices(len(labels), task.val_fraction)
    if task.subset is not None:
        train_idx = train_idx[: task.subset]
    # float32 in [0, 1], then standardized with the training rows' statistics (converted after the
    # split, so the uint8 images are the only full-size copy alongside the float sets)
    x_train = images[train_idx].float().div_(255.0)
    x_val = images[val_idx].float().div_(255.0)
    x_test = None if test is None else test[0].float().div_(255.0)
    x_train, x_val, *x_test_std = standardize(x_train, x_val, *([x_test] if x_test is not None else []),
                                              dims=channel_dims)  # fmt: skip
    return TaskData(
        x_train=x_train.to(device),
        y_train=labels[train_idx].to(device),
        x_val=x_val.to(device),
        y_val=labels[val_idx].to(device),
        num_classes=10,
        input_shape=tuple(images.shape[1:]),
        augment=augment,
        x_test=x_test_std[0].to(device) if x_test_std else None,
        y_test=test[1].to(device) if test is not None else None,
    )


def random_crop_flip(batch: Tensor, config: TrainConfig, padding: int = 4) -> Tensor:
    """CIFAR-style augmentation on the device: a random crop of the zero-padded image, then a random
    horizontal flip, each drawn per image, for the whole batch at once."""
    n, _, height, width = batch.shape
    padded = torch.nn.functional.pad(batch, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=batch.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=batch.device)
    rows = (torch.arange(height, device=batch.device).view(1, height, 1) + dy).expand(n, height, width)
    cols = (torch.arange(width, device=batch.device).view(1, 1, width) + dx).expand(n, height, width)
    flip = torch.rand(n, 1, 1, device=batch.device) < 0.5
    cols = torch.where(flip, cols.flip(-1), cols)
    # gather every (row, col) of each image's crop from the padded batch in one indexing op
    image = torch.arange(n, device=batch.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[image, rows, cols].permute(0, 3, 1, 2)


# ---------------------------------------------------------------- MNIST-format IDX files


def _idx_train(root: Path, name: str, download: bool) -> tuple[Tensor, Tensor]:
    folder = root / IDX_FOLDERS[name] / "raw"
    if download and not _idx_path(folder, IDX_FILES["train_labels"]):
        _download(name, root)
    paths = {key: _idx_path(folder, base) for key, base in IDX_FILES.items() if key.startswith("train")}
    missing = [IDX_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise TaskError(
            f"task {name!r}: no {' or '.join(missing)}(.gz) in {folder}. Put torchvision's "
            f"{IDX_FOLDERS[name]} files there, or set download = true under [task] to fetch them"
        )
    images = torch.from_numpy(read_idx(paths["train_images"]).copy())
    labels = torch.from_numpy(read_idx(paths["train_labels"]).astype(np.int64))
    if images.dim() != 3 or len(images) != len(labels):
        raise TaskError(
            f"task {name!r}: {folder} holds {tuple(images.shape)} images for {len(labels)} labels"
        )
    return images, labels


def _idx_test(root: Path, name: str) -> tuple[Tensor, Tensor] | None:
    """The official test split (t10k files) when it is there; training does without it."""
    folder = root / IDX_FOLDERS[name] / "raw"
    images_path, labels_path = (
        _idx_path(folder, IDX_FILES["test_images"]),
        _idx_path(folder, IDX_FILES["test_labels"]),
    )
    if images_path is None or labels_path is None:
        return None
    images = torch.from_numpy(read_idx(images_path).copy())
    labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    if images.dim() != 3 or len(images) != len(labels):
        raise TaskError(
            f"task {name!r}: {folder} holds {tuple(images.shape)} test images for {len(labels)} labels"
        )
    return images, labels


def _idx_path(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or gzip) as a numpy array: magic (0, 0, dtype, ndim), big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise TaskError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    offset = 4 + 4 * ndim
    if len(raw) - offset != expected:
        raise TaskError(
            f"{path}: header says {tuple(dims)} values but the file holds {len(raw) - offset} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(tuple(dims))


# ---------------------------------------------------------------- CIFAR-10 python batches


def _cifar_train(root: Path, download: bool) -> tuple[Tensor, Tensor]:
    folder = root / CIFAR_FOLDER
    if download and not all((folder / b).is_file() for b in CIFAR_TRAIN_BATCHES):
        _download("cifar10", root)
    missing = [b for b in CIFAR_TRAIN_BATCHES if not (folder / b).is_file()]
    if missing:
        raise TaskError(
            f"task 'cifar10': no {', '.join(missing)} in {folder}. Put torchvision's CIFAR10 files "
            "(cifar-10-batches-py) there, or set download = true under [task] to fetch them"
        )
    images, labels = [], []
    for name in CIFAR_TRAIN_BATCHES:
        batch = read_cifar_batch(folder / name)
        images.append(batch["data"])
        labels.extend(batch["labels"])
    data = np.concatenate(images).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), torch.tensor(labels, dtype=torch.int64)


def _cifar_test(root: Path) -> tuple[Tensor, Tensor] | None:
    """CIFAR-10's test_batch when it is there."""
    path = root / CIFAR_FOLDER / "test_batch"
    if not path.is_file():
        return None
    batch = read_cifar_batch(path)
    data = np.asarray(batch["data"]).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), torch.tensor(batch["labels"], dtype=torch.int64)


try:  # numpy 2 moved the array-rebuilding functions that pickles name
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
    from numpy._core.numeric import _frombuffer as _numpy_frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct
    from numpy.core.numeric import _frombuffer as _numpy_frombuffer


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Python 3's protocol-2 pickles spell bytes as _codecs.encode(text, "latin1")."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArraysOnly(pickle.Unpickler):
    """Unpickles containers, numbers, strings and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str) -> object:
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct
        if name == "_frombuffer" and module in ("numpy.core.numeric", "numpy._core.numeric"):
            return _numpy_frombuffer
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def read_cifar_batch(path: Path) -> dict:
    """One CIFAR python batch: {"data": uint8 array (N, 3072), "labels": [int]}, without running code."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise TaskError(f"{path} is not a CIFAR-10 python batch: {err}") from err
    if not isinstance(batch, dict):
        raise TaskError(f"{path} is not a CIFAR-10 python batch: it holds a {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if (
        not isinstance(data, np.ndarray)
        or data.ndim != 2
        or data.shape[1] != 3072
        or not isinstance(labels, list)
    ):
        raise TaskError(f"{path} is not a CIFAR-10 python batch: expected 'data' (N, 3072) and 'labels'")
    if len(labels) != len(data):
        raise TaskError(f"{path}: {len(data)} images but {len(labels)} labels")
    return {"data": data.astype(np.uint8, copy=False), "labels": [int(v) for v in labels]}


def _download(name: str, root: Path) -> None:
    """Fetch a data set with torchvision (the spec allowed the network with download = true)."""
    try:
        from torchvision import datasets
    except Exception as err:  # a broken torchvision install raises more than ImportError
        raise TaskError(
            f"task {name!r}: downloading needs torchvision, which failed to import ({err}); install the "
            f"torchvision build made for torch {torch.__version__}, or put the files in {root} yourself"
        ) from err
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    private_dir(root)  # torchvision writes the files; a new data folder is ours, so 0700
    try:
        cls(root=str(root), train=True, download=True)
        cls(root=str(root), train=False, download=True)
    except Exception as err:  # network and checksum errors come in many types
        raise TaskError(f"task {name!r}: download into {root} failed: {err}") from err
