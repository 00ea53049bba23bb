"""The conversion check: run an artifact in its own runtime on a probe input and compare
every output, matched by name and shape, with the Keras model's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ExportCheckError
from .base import Format, input_names, output_names

DEFAULT_TOLERANCE = 1e-4
PROBE_BATCH = 2  # more than one item, so that a batch dimension fixed at 1 cannot pass
PROBE_SEED = 20261130


@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    relative_error: float  # of max |keras|
    passed: bool


def probe_inputs(model, batch: int = PROBE_BATCH, seed: int = PROBE_SEED) -> dict[str, np.ndarray]:
    """Seeded normal values for every input, the size of a mean-subtracted image (scale 50),
    so that activations reach the ranges real inputs give."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, tensor in zip(input_names(model), model.inputs):
        shape = (batch, *tensor.shape[1:])
        if None in shape:
            raise ExportCheckError(f"input {name!r} has an unknown size {tuple(tensor.shape)}; "
                                   "give it with --input-shape")
        feeds[name] = (rng.standard_normal(shape) * 50).astype(np.float32)
    return feeds


def keras_outputs(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = [feeds[name] for name in input_names(model)]
    results = model.predict(values if len(values) > 1 else values[0], verbose=0)
    if len(model.outputs) == 1:
        results = [results]
    return {name: np.asarray(result) for name, result in zip(output_names(model), results)}


def compare_outputs(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                    tolerance: float = DEFAULT_TOLERANCE) -> list[OutputCheck]:
    """One OutputCheck per expected output; a missing, extra or reshaped output fails."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        raise ExportCheckError(f"the artifact's outputs {sorted(actual)} are not the model's "
                               f"{sorted(expected)}")
    checks = []
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape:
            raise ExportCheckError(f"output {name!r} has shape {got.shape}, the Keras model's "
                                   f"{want.shape}")
        error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        relative = error / scale if scale > 0 else error
        if not np.isfinite(relative):
            relative = float("inf")
        checks.append(OutputCheck(name, want.shape, error, relative, relative <= tolerance))
    return checks


def check_artifact(fmt: Format, model, path: str,
                   tolerance: float = DEFAULT_TOLERANCE) -> list[OutputCheck]:
    """Load ``path`` with ``fmt``, run it and the model on the probe input, compare; raise
    ExportCheckError naming the format and the worst output beyond ``tolerance``."""
    feeds = probe_inputs(model)
    expected = keras_outputs(model, feeds)
    runner = fmt.load(path)
    try:
        checks = compare_outputs(expected, runner.run(feeds), tolerance)
    except ExportCheckError as error:
        raise ExportCheckError(f"{fmt.description} ({fmt.runtime}): {error}") from None
    failed = [check for check in checks if not check.passed]
    if failed:
        worst = max(failed, key=lambda check: check.relative_error)
        raise ExportCheckError(
            f"{fmt.description} ({fmt.runtime}): output {worst.name!r} differs from the Keras "
            f"model's by {worst.relative_error:.3g} of its largest value (max abs error "
            f"{worst.max_abs_error:.3g}; tolerance {tolerance:g}); "
            f"{len(failed)} of {len(checks)} outputs differ")
    return checks
