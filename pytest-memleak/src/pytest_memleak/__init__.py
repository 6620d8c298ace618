"""pytest-memleak: run a pytest session under memleak with per-test markers."""

from .markers import Markers

__all__ = ["Markers"]
__version__ = "0.1.0"
