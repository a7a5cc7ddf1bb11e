"""Seed models with PaddleSlim's faces (`slim.models.MobileNet()`)."""
from quantkit.models.mobilenet import MobileNet

__all__ = ["MobileNet"]
