"""Static post-training calibration: data adapters, settings and the scale computation."""
