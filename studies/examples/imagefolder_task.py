"""A task of images on disk: a torchvision ImageFolder read batch by batch through the engine's loaders.

`[task] data_dir` holds one folder per class (`dark/*.png`, `bright/*.png`, ...). The function returns a
LoaderTaskData of data sets instead of tensors: nothing is decoded until a batch needs it, in the
`[train] loader_workers` processes. `python imagefolder_task.py FOLDER` writes a small demo folder.
"""

import copy
import sys

import torch
from torchvision import datasets, transforms

from engine.trainer.tasks import LoaderTaskData, split_indices


def build(params: dict, device: torch.device) -> LoaderTaskData:
    size = int(params.get("size", 8))
    folder = datasets.ImageFolder(params["__data_dir__"])  # scans the files once; decodes none
    train_set, val_set = copy.copy(folder), copy.copy(folder)  # two views, each with its own transforms
    train_set.transform = transforms.Compose(
        [transforms.Resize((size, size)), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
    )
    val_set.transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    train_rows, val_rows = split_indices(len(folder), params["__val_fraction__"])
    return LoaderTaskData(
        train_set=torch.utils.data.Subset(train_set, train_rows.tolist()),
        val_set=torch.utils.data.Subset(val_set, val_rows.tolist()),
        num_classes=len(folder.classes),
        input_shape=(3, size, size),
    )


def write_demo(root: str, per_class: int = 20, size: int = 8) -> None:
    """Dark and bright noisy squares as PNGs, one folder per class."""
    from pathlib import Path

    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for name, base in (("dark", 60), ("bright", 190)):
        (Path(root) / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            noise = torch.randint(-40, 41, (size, size, 3), generator=generator)
            pixels = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels, "RGB").save(Path(root) / name / f"{k}.png")


if __name__ == "__main__":
    write_demo(sys.argv[1])
