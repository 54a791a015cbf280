"""mpyml host tool: pack int8 TFLite models for the mpyml MicroPython runtime, inspect, run and benchmark them."""

from .inspect_model import inspect_model
from .packer import PackError, pack

__all__ = ["pack", "inspect_model", "inspect", "PackError", "convert"]
__version__ = "0.1.0"


def inspect(data: bytes) -> dict:
    """Per-layer description of a packed model or .tflite (alias of inspect_model)."""
    return inspect_model(data)


def __getattr__(name: str) -> object:
    """`mpyml.convert`, imported on first use so that `import mpyml` does not import TensorFlow. The module is
    callable: `mpyml.convert(model, calibration=...)` is mpyml.convert.convert()."""
    if name == "convert":
        import importlib

        return importlib.import_module(".convert", __name__)
    raise AttributeError(f"module 'mpyml' has no attribute {name!r}")
