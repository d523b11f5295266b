"""The version stamped on every result, figure and cache key."""

from importlib.metadata import PackageNotFoundError, version

from sim.kernels import KERNEL_VERSION

try:
    PACKAGE_VERSION = version("sigprop")
except PackageNotFoundError:  # running from a source tree that is not installed
    PACKAGE_VERSION = "0+unknown"

#: ``<package version>+k<kernel version>``: changes whenever results may change.
VERSION = f"{PACKAGE_VERSION}+k{KERNEL_VERSION}"
