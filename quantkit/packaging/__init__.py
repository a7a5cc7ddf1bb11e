"""Release bundles: one converted target -> a folder + .tar.gz with checksums, smoke
check, loading instructions and provenance; verify them; load them for serving.

    from quantkit.packaging import package, verify, load_bundle, open_bundle_predictor

    folder = package(Path("runs/mnist"), Path("dist"), target="intel-onednn-int8")
    report = verify(Path("dist/intel-onednn-int8.tar.gz"))
    bundle = load_bundle(folder)
    predictor = open_bundle_predictor(bundle)

Importing this package does not import Paddle or ONNX Runtime; the functions do, when
they need a runtime.
"""
from __future__ import annotations

from quantkit.packaging.bundle import package
from quantkit.packaging.load import LoadedBundle, load_bundle, open_bundle_predictor
from quantkit.packaging.manifest import MANIFEST_FILE, SCHEMA, Manifest
from quantkit.packaging.verify import VerifyReport, verify

__all__ = ["package", "verify", "load_bundle", "open_bundle_predictor", "LoadedBundle",
           "Manifest", "VerifyReport", "MANIFEST_FILE", "SCHEMA"]
