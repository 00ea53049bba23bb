"""The conversion check: run an artifact in its own runtime on a probe input and compare
every output, matched by name and shape, with the Keras model's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ExportCheckError
from .base import Format, input_names, keras_results, output_names, own_batch_inputs

DEFAULT_TOLERANCE = 1e-4
# One probe item per scale: 50 reaches the activations a mean-subtracted image gives; 1 keeps
# a Softmax or a sigmoid out of saturation, where a wrong logit would still show. Two items
# also mean a batch dimension fixed at 1 cannot pass.
PROBE_SCALES = (50.0, 1.0)
PROBE_SEED = 20261130


@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    relative_error: float  # of max |keras|
    passed: bool


def probe_inputs(model, seed: int = PROBE_SEED) -> dict[str, np.ndarray]:
    """Seeded normal values for every input, item i scaled by PROBE_SCALES[i]; an input with
    its own axis 0 (``base.own_batch_inputs``) gets the values the layer taking it makes
    (its ``probe_values(position, batch, rng)``, e.g. valid boxes for the batch)."""
    rng = np.random.default_rng(seed)
    scales = np.asarray(PROBE_SCALES, np.float32)
    feeds = {}
    own = own_batch_inputs(model)
    for name, tensor in zip(input_names(model), model.inputs):
        if name in own:
            layer, position = own[name]
            feeds[name] = np.asarray(layer.probe_values(position, len(scales), rng), np.float32)
            continue
        shape = (len(scales), *tensor.shape[1:])
        if None in shape:
            raise ExportCheckError(f"input {name!r} has an unknown size {tuple(tensor.shape)}; "
                                   "give it with --input-shape")
        values = rng.standard_normal(shape).astype(np.float32)
        feeds[name] = values * scales.reshape((-1,) + (1,) * (len(shape) - 1))
    return feeds


def keras_outputs(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    results = keras_results(model, [feeds[name] for name in input_names(model)])
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
        error, relative = _item_errors(want, got)
        checks.append(OutputCheck(name, want.shape, error, relative, relative <= tolerance))
    return checks


def _item_errors(want: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """Max abs error, and the largest over the batch items of an item's max abs error relative
    to that item's max |value| (so a small item is not judged by a large one's scale)."""
    if not want.size:
        return 0.0, 0.0
    items = max(want.shape[0], 1) if want.ndim else 1
    want = want.astype(np.float64).reshape(items, -1)
    got = got.astype(np.float64).reshape(items, -1)
    # Where Keras overflows (exp of a large probe value) the artifact must give the same
    # inf or NaN; those entries agree, and the finite ones are compared.
    same = (want == got) | (np.isnan(want) & np.isnan(got))
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf where they agree
        difference = np.where(same, 0.0, np.abs(got - want))
        errors = difference.max(axis=1)
        scales = np.abs(np.where(np.isfinite(want), want, 0.0)).max(axis=1)
        relative = np.where(scales > 0, errors / scales, errors)
    relative = np.where(np.isnan(relative), np.inf, relative)
    return float(errors.max()), float(relative.max())


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
