"""settlerd: settles OTC crypto trades with cross-chain hash-time-locked contracts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("settlerd")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
