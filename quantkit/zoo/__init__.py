"""A model zoo as the kit's proving ground: real models, real data, every target.

`config` reads the zoo file; `ppocr` holds PP-OCR's own pre- and post-processing;
`render` draws text with known ground truth; `datasets` builds the seeded, disjoint
calibration and held-out sets the zoo file names as zoo:SET.
"""
