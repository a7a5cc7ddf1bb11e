"""The data layer: every array that enters quantkit is read and checked here.

`feeds` holds the one set of input rules (names, dtypes, shapes, finite values, rows,
labels); `Dataset` is the checked data type every stage takes; `sources` reads MNIST, .npz
files and image folders into it; `readers` turns PaddleSlim's data forms into checked
batches; `synthetic` makes seeded stand-ins for timing.
"""
from quantkit.data.dataset import CALIBRATION, EVAL, DataRole, Dataset
from quantkit.data.feeds import (FeedError, FeedSpec, check_feed, check_feeds, check_label_range,
                                 check_labels, check_names, feeds_text, shape_text)

__all__ = ["CALIBRATION", "EVAL", "DataRole", "Dataset", "FeedError", "FeedSpec", "check_feed",
           "check_feeds", "check_label_range", "check_labels", "check_names", "feeds_text",
           "shape_text"]
