"""Paddle Inference 3.x with oneDNN INT8: the runtime Paddle 3 users deploy, measured.

The artifact is exactly the oneDNN adapter's (the calibrated legacy model, float
weights restored, the same recipe); only the runtime differs: Paddle 3.3.1 in the
paddle3 side environment, driven through a worker (quantkit.targets.side_runtime). Its
PIR pipeline is kept off (paddle_runtime.OneDnnRecipe.apply says why): measured here,
Paddle 3.3.1's legacy pipeline runs the calibrated model on oneDNN's int8 kernels.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from quantkit import sideenv
from quantkit.errors import QuantkitError
from quantkit.model_files import InferenceModel
from quantkit.targets.artifact import Artifact
from quantkit.targets.base import Availability, Predictor
from quantkit.targets.paddle_inference import PaddleInferenceAdapter
from quantkit.targets.profile import Backend, TargetProfile

PADDLE3_ENV = "paddle3"


class Paddle3InferenceAdapter(PaddleInferenceAdapter):
    backend = Backend.PADDLE3_INFERENCE

    def availability(self, profile: TargetProfile) -> Availability:
        here = super().availability(profile)
        if not here.can_run:
            return here
        if not sideenv.ready(PADDLE3_ENV):
            return Availability(False, f"the {PADDLE3_ENV} side environment is missing: run "
                                       f"'quantkit env install {PADDLE3_ENV}'")
        return Availability(True, f"{here.reason} (Paddle 3, {PADDLE3_ENV} side environment)")

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        artifact = super().prepare(model, profile, out_dir)
        settings = dict(artifact.settings, paddle=_pinned_paddle())
        return dataclasses.replace(artifact, backend=self.backend, settings=settings)

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> Predictor:
        available = self.availability(profile)
        if not available.can_run:
            raise QuantkitError(f"cannot run {artifact.target} here: {available.reason}")
        from quantkit.targets.side_runtime import WorkerPredictor

        return WorkerPredictor(artifact, profile.threads,
                               what=f"Paddle {_pinned_paddle()} cannot run {artifact.folder}")


def _pinned_paddle() -> str:
    """The Paddle version the side env pins (what the artifact is measured with)."""
    for package in sideenv.spec(PADDLE3_ENV).packages:
        if package.startswith("paddlepaddle=="):
            return package.split("==", 1)[1]
    raise AssertionError("the paddle3 side env pins no paddlepaddle")
