"""mpyml host tool: pack int8 TFLite models for the mpyml MicroPython runtime, inspect, run and benchmark them."""

from .inspect_model import inspect_model
from .packer import PackError, pack

__all__ = ["pack", "inspect_model", "inspect", "PackError"]
__version__ = "0.1.0"


def inspect(data: bytes) -> dict:
    """Per-layer description of a packed model or .tflite (alias of inspect_model)."""
    return inspect_model(data)
