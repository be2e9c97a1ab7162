"""Tasks: digits, MNIST-format and CIFAR files written here in torchvision's layout, user tasks."""

from __future__ import annotations

import gzip
import pickle
import struct
import sys
import textwrap

import numpy as np
import pytest
import torch

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import TaskData, TaskError, clear_cache, load_task
from engine.trainer.tasks.vision import random_crop_flip, read_cifar_batch, read_idx

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    clear_cache()
    monkeypatch.setattr(sys, "path", list(sys.path))  # user tasks put their spec folder on sys.path
    yield
    clear_cache()


def torchvision_datasets():
    """torchvision's dataset classes, or a skip when this environment's torchvision cannot import."""
    try:
        from torchvision import datasets
    except Exception as err:  # e.g. a CUDA torchvision build next to a CPU torch
        pytest.skip(f"torchvision does not import here: {err}")
    return datasets


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(root, folder="MNIST", n=50, compress=False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", images, compress)
    write_idx(raw / "train-labels-idx1-ubyte", labels, compress)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:10], compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:10], compress)
    return images, labels


def write_cifar(root, per_batch=4):
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{i}.png" for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches.append((data, labels))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]}, protocol=2)
    )
    return batches[:5]


# ---------------------------------------------------------------- digits


def test_digits_split_is_fixed_standardized_and_on_device():
    data = load_task(TaskSpec(name="digits", val_fraction=0.25), {}, CPU)
    assert data.x_train.shape == (1348, 64) and data.x_val.shape == (449, 64)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.num_classes == 10 and data.input_shape == (64,)
    assert data.x_train.mean(0).abs().max() < 1e-4  # train statistics, so the train mean is 0
    clear_cache()
    again = load_task(TaskSpec(name="digits", val_fraction=0.25), {}, CPU)
    assert torch.equal(again.y_val, data.y_val)


def test_digits_subset_and_cache():
    spec = TaskSpec(name="digits", subset=100)
    data = load_task(spec, {}, CPU)
    assert len(data.y_train) == 100 and len(data.y_val) == 359
    assert load_task(spec, {}, CPU) is data
    assert load_task(TaskSpec(name="digits"), {}, CPU) is not data


@pytest.mark.parametrize(
    "name, rows, features, classes", [("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3)]
)
def test_other_bundled_sklearn_sets(name, rows, features, classes):
    data = load_task(TaskSpec(name=name, val_fraction=0.2), {}, CPU)
    n_val = round(rows * 0.2)
    assert data.x_train.shape == (rows - n_val, features) and data.x_val.shape == (n_val, features)
    assert data.num_classes == classes and data.input_shape == (features,)
    assert set(data.y_train.tolist()) == set(range(classes))
    assert data.x_train.mean(0).abs().max() < 1e-4


def test_diabetes_is_a_regression_with_standardized_float_targets():
    data = load_task(TaskSpec(name="diabetes", val_fraction=0.2), {}, CPU)
    assert data.x_train.shape == (442 - 88, 10) and data.x_val.shape == (88, 10)
    assert data.num_classes == 0 and data.y_train.dtype == torch.float32 and data.y_train.dim() == 1
    # standardized with the training split's statistics: its targets have mean 0 and std 1, the split's not quite
    assert abs(float(data.y_train.mean())) < 1e-5 and float(data.y_train.std()) == pytest.approx(1.0, abs=1e-5)
    assert float(data.y_val.std()) != pytest.approx(1.0, abs=1e-5)


def test_unknown_task_names_the_choices():
    with pytest.raises(TaskError, match="digits, breast_cancer, wine, diabetes, mnist, fashion_mnist, cifar10"):
        load_task(TaskSpec(name="imagenet"), {}, CPU)


# ---------------------------------------------------------------- MNIST format


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_in_torchvision_layout(tmp_path, name, folder, compress):
    images, labels = write_mnist(tmp_path, folder, n=50, compress=compress)
    data = load_task(TaskSpec(name=name, data_dir=str(tmp_path), val_fraction=0.2), {}, CPU)
    assert data.input_shape == (1, 28, 28)
    assert data.x_train.shape == (40, 1, 28, 28) and data.x_val.shape == (10, 1, 28, 28)
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3
    assert sorted(torch.cat([data.y_train, data.y_val]).tolist()) == sorted(labels.tolist())
    assert data.augment is None


def test_idx_reader_matches_torchvision(tmp_path):
    images, labels = write_mnist(tmp_path, "MNIST", n=30)
    datasets = torchvision_datasets()
    theirs = datasets.MNIST(root=str(tmp_path), train=True, download=False)
    assert torch.equal(
        theirs.data, torch.from_numpy(read_idx(tmp_path / "MNIST/raw/train-images-idx3-ubyte"))
    )
    assert theirs.targets.tolist() == labels.tolist()


def test_missing_files_say_where_and_how_to_download(tmp_path):
    with pytest.raises(TaskError) as err:
        load_task(TaskSpec(name="mnist", data_dir=str(tmp_path)), {}, CPU)
    message = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "download = true" in message


def test_a_file_that_is_not_idx_is_refused(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x1f\x8b\x08\x00 not idx")
    with pytest.raises(TaskError, match="not an IDX file"):
        read_idx(path)
    truncated = tmp_path / "short"
    truncated.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(TaskError, match="header says"):
        read_idx(truncated)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_batches_load_as_channel_first_images(tmp_path):
    batches = write_cifar(tmp_path, per_batch=4)
    data = load_task(TaskSpec(name="cifar10", data_dir=str(tmp_path), val_fraction=0.25), {}, CPU)
    assert data.input_shape == (3, 32, 32)
    assert data.x_train.shape == (15, 3, 32, 32) and data.x_val.shape == (5, 3, 32, 32)
    per_channel = data.x_train.mean(dim=(0, 2, 3))
    assert per_channel.abs().max() < 1e-4
    assert sorted(torch.cat([data.y_train, data.y_val]).tolist()) == sorted(sum((b[1] for b in batches), []))
    assert data.augment is random_crop_flip


def test_cifar_reader_matches_torchvision(tmp_path, monkeypatch):
    batches = write_cifar(tmp_path, per_batch=3)
    datasets = torchvision_datasets()
    import torchvision.datasets.cifar as cifar_module

    # our tiny files cannot match the real archive's md5 sums
    monkeypatch.setattr(cifar_module, "check_integrity", lambda *args, **kwargs: True)
    theirs = datasets.CIFAR10(root=str(tmp_path), train=True, download=False)
    ours = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    # torchvision keeps HWC; ours is the file's CHW row
    assert np.array_equal(theirs.data[:3], ours["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert theirs.targets[:3] == batches[0][1]


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": []}))
    with pytest.raises(TaskError, match="refusing to load builtins.print"):
        read_cifar_batch(path)


def test_random_crop_flip_takes_a_shifted_window_per_image():
    torch.manual_seed(0)
    batch = torch.randn(16, 3, 8, 8)
    out = random_crop_flip(batch, TrainConfig(), padding=2)
    assert out.shape == batch.shape
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    flips = 0
    for i in range(16):
        windows = [
            (padded[i, :, dy : dy + 8, dx : dx + 8], flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (0, 1)
        ]
        matches = [flip for w, flip in windows if torch.equal(out[i], w.flip(-1) if flip else w)]
        assert matches, f"image {i} is not a crop of its padded self"
        flips += matches[0]
    assert 0 < flips < 16  # both flipped and unflipped images occur


# ---------------------------------------------------------------- user tasks


def write_user_task(folder, module, monkeypatch):
    monkeypatch.delitem(sys.modules, module, raising=False)
    (folder / f"{module}.py").write_text(
        textwrap.dedent(
            """
            import torch
            from engine.trainer.tasks import TaskData

            CALLS = []

            def blobs(params, device):
                CALLS.append(params)
                g = torch.Generator().manual_seed(params.get("seed", 0))
                n = params.get("n", 40)
                x = torch.randn(n, 5, generator=g)
                y = (x[:, 0] > 0).long()
                return TaskData(x[:30].to(device), y[:30].to(device), x[30:].to(device), y[30:].to(device),
                                num_classes=2, input_shape=(5,))

            def wrong(params, device):
                return {"x": 1}
            """
        )
    )


def test_user_task_is_resolved_from_the_spec_folder(tmp_path, monkeypatch):
    write_user_task(tmp_path, "my_tasks", monkeypatch)
    task = TaskSpec(name="my_tasks:blobs", data_dir=str(tmp_path / "data"))
    data = load_task(task, {"n": 40, "__spec_dir__": str(tmp_path)}, CPU)
    assert isinstance(data, TaskData) and data.x_train.shape == (30, 5)
    import my_tasks

    params = my_tasks.CALLS[-1]
    assert params["n"] == 40 and params["__spec_dir__"] == str(tmp_path)
    assert params["__data_dir__"] == str(tmp_path / "data") and params["__download__"] is False
    assert load_task(task, {"n": 40}, CPU, spec_dir=tmp_path) is not None
    calls = len(my_tasks.CALLS)
    load_task(task, {"n": 40, "__spec_dir__": str(tmp_path)}, CPU)
    assert len(my_tasks.CALLS) == calls  # cached for the same params
    load_task(task, {"n": 50, "__spec_dir__": str(tmp_path)}, CPU)
    assert len(my_tasks.CALLS) == calls + 1


def test_a_task_file_written_before_the_trainer_package_still_loads(tmp_path, monkeypatch):
    """User task files import TaskData from engine.tasks, its name before engine/trainer/ existed."""
    (tmp_path / "old_tasks.py").write_text(
        "import torch\nfrom engine.tasks import TaskData\n\n"
        "def blobs(params, device):\n"
        "    x = torch.randn(20, 3)\n    y = torch.zeros(20, dtype=torch.long)\n"
        "    return TaskData(x[:15], y[:15], x[15:], y[15:], num_classes=2, input_shape=(3,))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_task(TaskSpec(name="old_tasks:blobs"), {"__spec_dir__": str(tmp_path)}, CPU)
    assert isinstance(data, TaskData) and data.x_val.shape == (5, 3)


def test_user_task_errors_are_plain(tmp_path, monkeypatch):
    write_user_task(tmp_path, "other_tasks", monkeypatch)
    with pytest.raises(TaskError, match="cannot resolve user task 'other_tasks:nope'"):
        load_task(TaskSpec(name="other_tasks:nope"), {}, CPU, spec_dir=tmp_path)
    with pytest.raises(TaskError, match="cannot resolve user task 'missing_module:f'"):
        load_task(TaskSpec(name="missing_module:f"), {}, CPU, spec_dir=tmp_path)
    with pytest.raises(TaskError, match="returned dict, expected engine.trainer.tasks.TaskData"):
        load_task(TaskSpec(name="other_tasks:wrong"), {}, CPU, spec_dir=tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_the_network_is_asked_only_when_the_spec_allows_it(tmp_path, monkeypatch, name):
    from engine.trainer.tasks import vision

    asked = []

    def fake_download(task_name, root):  # stands in for torchvision's download; never the network
        asked.append((task_name, root))
        if task_name == "cifar10":
            write_cifar(root, per_batch=2)
        else:
            write_mnist(root, "MNIST" if task_name == "mnist" else "FashionMNIST", n=20)

    monkeypatch.setattr(vision, "_download", fake_download)
    with pytest.raises(TaskError):
        load_task(TaskSpec(name=name, data_dir=str(tmp_path), download=False), {}, CPU)
    assert asked == []
    data = load_task(TaskSpec(name=name, data_dir=str(tmp_path), download=True), {}, CPU)
    assert asked == [(name, tmp_path)] and len(data.y_train) > 0
    clear_cache()
    load_task(TaskSpec(name=name, data_dir=str(tmp_path), download=True), {}, CPU)
    assert len(asked) == 1  # the files are there now: no second download


@pytest.mark.parametrize("kind", ["mnist", "cifar10"])
def test_the_official_test_split_is_held_apart_and_evaluated_once(tmp_path, kind):
    """t10k / test_batch files load as the test split, standardized with training statistics; training
    reports test_acc of the final model beside (never instead of) the validation metric."""
    from engine.trainer.train import train

    if kind == "mnist":
        write_mnist(tmp_path, n=60)
        expected_test = 10
    else:
        write_cifar(tmp_path, per_batch=6)
        expected_test = 6
    data = load_task(TaskSpec(name=kind, data_dir=str(tmp_path), val_fraction=0.2), {}, CPU)
    assert data.x_test is not None and len(data.y_test) == expected_test
    assert data.x_test.shape[1:] == data.x_train.shape[1:]
    assert len(data.y_train) + len(data.y_val) > expected_test  # test rows are not part of train/val
    config = TrainConfig(epochs=1, batch_size=8, width=8, layers=1, amp="off")
    result = train(config, data, CPU, lambda report: False)
    assert set(result.test) == {"test_loss", "test_acc"}
    assert 0.0 <= result.test["test_acc"] <= 1.0 and result.test["test_loss"] > 0


def test_a_data_set_without_test_files_trains_without_a_test_split(tmp_path):
    write_mnist(tmp_path, n=40)
    for f in (tmp_path / "MNIST" / "raw").glob("t10k-*"):
        f.unlink()
    data = load_task(TaskSpec(name="mnist", data_dir=str(tmp_path)), {}, CPU)
    assert data.x_test is None and data.y_test is None
