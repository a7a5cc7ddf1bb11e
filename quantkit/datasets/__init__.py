"""Datasets that ship with the kit's dependencies, so nothing is downloaded at run time."""
from quantkit.datasets import mnist

__all__ = ["mnist"]
