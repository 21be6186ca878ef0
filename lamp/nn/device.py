"""The one device rule of lamp: ``"auto"`` is the GPU when torch sees one, else the CPU.

torch is imported when a device is resolved, not when this module is, so light modules (the text
encoder's configuration) can use the rule without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamp.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: the GPU when torch sees one, else the CPU; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given.

    >>> str(resolve_device("cpu"))
    'cpu'
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} was requested but torch sees no CUDA GPU. "
                              "Use device='auto' or device='cpu'.")
        return torch.device(device)
    raise ConfigError(f"Unknown device {device!r}. Valid choices are: {', '.join(DEVICES)} (or cuda:N).")
