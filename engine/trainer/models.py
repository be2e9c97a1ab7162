"""Model builders: an MLP and a small ResNet-style CNN, with kaiming/xavier/default init."""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import Tensor, nn

from engine.config import TrainConfig

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
# the gain each init scheme assumes for the activation that follows a layer
_GAIN_NAME = {"relu": "relu", "gelu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}


def build_model(config: TrainConfig, input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    """The model the config names, initialised by `config.init`."""
    if config.model == "mlp":
        model = MLP(config, input_shape, outputs)
    elif config.model == "resnet":
        model = ResNet(config, input_shape, outputs)
    else:  # pragma: no cover - TrainConfig's Literal rules it out
        raise ValueError(f"unknown model {config.model!r}")
    init_weights(model, config.init, config.activation)
    return model


class MLP(nn.Sequential):
    """Flatten, then `layers` x (Linear [BatchNorm] activation [Dropout]), then the output Linear."""

    def __init__(self, config: TrainConfig, input_shape: tuple[int, ...], outputs: int):
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        if len(input_shape) > 1:
            parts["flatten"] = nn.Flatten()
        width_in = math.prod(input_shape)
        for i, (width, dropout) in enumerate(
            zip(config.hidden_widths(), config.hidden_dropouts(), strict=True)
        ):
            n = i + 1
            # batch norm makes the Linear's bias redundant
            parts[f"fc{n}"] = nn.Linear(width_in, width, bias=not config.batch_norm)
            if config.batch_norm:
                parts[f"bn{n}"] = nn.BatchNorm1d(width)
            parts[f"act{n}"] = ACTIVATIONS[config.activation]()
            if dropout > 0:
                parts[f"drop{n}"] = nn.Dropout(dropout)
            width_in = width
        parts["out"] = nn.Linear(width_in, outputs)
        super().__init__(parts)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (1x1 conv when the shape changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.act = ACTIVATIONS[activation]()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels_out),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv (`width` channels), `layers` residual stages (channels double, size halves after the
    first), global average pooling, dropout, linear head. Batch norm throughout."""

    def __init__(self, config: TrainConfig, input_shape: tuple[int, ...], outputs: int):
        super().__init__()
        self.unflatten: nn.Module = nn.Identity()
        if len(input_shape) == 1 and math.isqrt(input_shape[0]) ** 2 == input_shape[0]:
            side = math.isqrt(input_shape[0])  # e.g. digits: 64 features -> one 8x8 channel
            self.unflatten = nn.Unflatten(1, (1, side, side))
            input_shape = (1, side, side)
        if len(input_shape) != 3:
            raise ValueError(
                f"the resnet model needs image input (channels, height, width); this task gives {input_shape}"
            )
        width = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            ACTIVATIONS[config.activation](),
        )
        stages = []
        channels = width
        for i in range(config.layers):
            out = width * 2**i
            stages.append(BasicBlock(channels, out, stride=1 if i == 0 else 2, activation=config.activation))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.head = nn.Linear(channels, outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(self.unflatten(x)))
        return self.head(self.drop(self.pool(x)))


def init_weights(model: nn.Module, scheme: str, activation: str) -> None:
    """Re-initialise Linear and Conv weights: kaiming (fan-in), xavier (uniform), or PyTorch's default."""
    if scheme == "default":
        return
    gain_name = _GAIN_NAME[activation]
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        if scheme == "kaiming":
            nn.init.kaiming_normal_(module.weight, nonlinearity=gain_name)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain(gain_name))
        else:
            raise ValueError(f"unknown init {scheme!r}")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def layer_names(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers telemetry reports on, input to output: modules with a weight of 2+ dimensions."""
    out = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2 and weight.requires_grad:
            out.append((name or type(module).__name__, module))
    return out
