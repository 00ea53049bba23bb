"""SSD's PriorBox and DetectionOutput as Keras layers.

PriorBox
--------
Caffe's top is (1, 2, H*W*num_priors*4): row 0 the prior boxes (xmin, ymin, xmax, ymax per prior
per cell, normalised by the image size), row 1 their variances. It depends on shapes only, so the
values are computed in numpy when the layer is built (``prior_boxes``), following
prior_box_layer.cpp's mixed float/double arithmetic (including its truncation of min_size and
max_size to int). The layer takes [feature map, image] like Caffe and outputs the constant with
the Keras batch axis: shape (batch, 2, L), every item a copy of Caffe's single row. That keeps the
batch axis dynamic (predict in batches, Concat with other priors along axis 2) at the price of
one copy per image.

DetectionOutput
---------------
Inputs [loc (batch, P*L*4), conf (batch, P*num_classes), priors (batch, 2, P*4)] with L = 1 when
locations are shared, else num_classes. Per image, as detection_output_layer.cpp and
bbox_util.cpp do:

1. decode each prior's location (CORNER, CENTER_SIZE or CORNER_SIZE; variances from the priors
   unless ``variance_encoded_in_target``), no clipping;
2. per class but the background: candidates are the priors whose score is > confidence_threshold,
   stably sorted by descending score, the first ``top_k`` kept; greedy NMS keeps a candidate when
   its Jaccard overlap with every box kept so far is <= the (adaptive, with eta < 1) threshold;
3. with ``keep_top_k`` > -1, only the keep_top_k best-scored kept boxes of the image survive;
4. rows ``[image, label, score, xmin, ymin, xmax, ymax]`` by ascending label, then descending
   score.

Caffe concatenates the images' rows into (1, 1, total, 7). A Keras model needs a static shape,
so this layer outputs (batch, K, 7): item i holds image i's rows first, then padding rows
``[i, -1, -1, -1, -1, -1, -1]`` (Caffe's own "no detection" row). K = keep_top_k when it is set
(> -1), else (number of non-background classes) * min(top_k, P); at least 1. A row is a
detection exactly when its label (column 1) is >= 0. Column 0 is the item's index in the batch the
layer was called on (with ``predict(batch_size=...)`` it restarts in every batch: use the
Keras batch axis instead).

NMS uses only keras.ops (a ``fori_loop`` over the candidates of all images and classes at once),
so it runs on every backend. Ties between exactly equal scores are broken by the lower prior
index (stable sort, as Caffe's per-class sort); Caffe's keep_top_k sort is not stable, so the
order of exactly tied scores there may differ from Caffe's.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

FLT_MAX = float(np.finfo(np.float32).max)
CODE_TYPES = ("corner", "center_size", "corner_size")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _float_list(name, values, positive=True):
    values = [float(v) for v in values]
    if positive and any(not v > 0 for v in values):
        raise ValueError(f"PriorBox {name} must be positive, got {values}")
    return values


def _pair_or_none(name, value, kind):
    if value is None:
        return None
    pair = tuple(value)
    if len(pair) != 2 or any(not v > 0 for v in pair):
        raise ValueError(f"PriorBox {name} must be None or two positive values, got {value!r}")
    return tuple(kind(v) for v in pair)


def prior_boxes(feature_hw, image_hw, min_sizes, max_sizes, aspect_ratios, clip, variances,
                step_hw=None, offset=0.5) -> np.ndarray:
    """Caffe's PriorBox top without the batch axis: (2, H*W*num_priors*4), float32.

    ``aspect_ratios`` is the expanded list (1 first, flips included), ``image_hw`` the image size
    (img_h/img_w or the image blob's), ``step_hw`` None to use image size / feature size.
    """
    f32 = np.float32
    layer_h, layer_w = feature_hw
    img_h, img_w = image_hw
    if step_hw is None:  # float / int in float32
        step_h, step_w = f32(img_h) / f32(layer_h), f32(img_w) / f32(layer_w)
    else:
        step_h, step_w = f32(step_hw[0]), f32(step_hw[1])
    sizes = []  # (box width, box height) per prior of a cell, as floats
    for s, min_size in enumerate(min_sizes):
        min_size = int(min_size)  # Caffe stores it in an int
        sizes.append((f32(min_size), f32(min_size)))
        if max_sizes:
            side = f32(math.sqrt(min_size * int(max_sizes[s])))
            sizes.append((side, side))
        for ar in aspect_ratios:
            ar = f32(ar)
            if abs(float(ar) - 1.0) < 1e-6:
                continue
            root = np.sqrt(ar)  # sqrt of a float is a float here (sqrt(min * max) a double)
            sizes.append((f32(min_size) * root, f32(min_size) / root))
    widths = np.array([w for w, _ in sizes], dtype=np.float64)
    heights = np.array([h for _, h in sizes], dtype=np.float64)
    offset = f32(offset)
    # centre = (index + offset) * step, in float32
    cx = ((np.arange(layer_w, dtype=f32) + offset) * step_w).astype(f32).astype(np.float64)
    cy = ((np.arange(layer_h, dtype=f32) + offset) * step_h).astype(f32).astype(np.float64)
    cx = cx[np.newaxis, :, np.newaxis]
    cy = cy[:, np.newaxis, np.newaxis]
    shape = (layer_h, layer_w, len(sizes))
    # (centre -/+ size / 2.) / image size in double, stored as float
    boxes = np.stack([np.broadcast_to((cx - widths / 2.0) / img_w, shape),
                      np.broadcast_to((cy - heights / 2.0) / img_h, shape),
                      np.broadcast_to((cx + widths / 2.0) / img_w, shape),
                      np.broadcast_to((cy + heights / 2.0) / img_h, shape)], axis=-1).astype(f32)
    boxes = boxes.reshape(-1)
    if clip:
        boxes = np.minimum(np.maximum(boxes, f32(0.0)), f32(1.0))
    if len(variances) == 1:
        spread = np.full(boxes.shape, variances[0], dtype=f32)
    else:
        spread = np.tile(np.asarray(variances, dtype=f32), boxes.size // 4)
    return np.stack([boxes, spread]).astype(f32)


@keras.saving.register_keras_serializable(package="caffe2keras")
class PriorBox(keras.layers.Layer):
    """Inputs [feature map, image] (NHWC); output (batch, 2, L), the priors of Caffe's
    PriorBox repeated for each item. ``img_size`` / ``step`` are (height, width) or None."""

    def __init__(self, min_sizes, max_sizes=(), aspect_ratios=(1.0,), clip=True,
                 variances=(0.1,), img_size=None, step=None, offset=0.5, **kwargs):
        super().__init__(**kwargs)
        self.min_sizes = _float_list("min_sizes", min_sizes)
        self.max_sizes = _float_list("max_sizes", max_sizes)
        self.aspect_ratios = _float_list("aspect_ratios", aspect_ratios)
        self.variances = _float_list("variances", variances)
        if not self.min_sizes:
            raise ValueError("PriorBox needs at least one min_size")
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise ValueError(f"PriorBox has {len(self.max_sizes)} max_sizes for "
                             f"{len(self.min_sizes)} min_sizes")
        if len(self.variances) not in (1, 4):
            raise ValueError(f"PriorBox takes 1 or 4 variances, got {self.variances}")
        if not self.aspect_ratios or abs(self.aspect_ratios[0] - 1.0) >= 1e-6:
            raise ValueError(f"PriorBox aspect_ratios must start with 1 (Caffe's expanded list), "
                             f"got {self.aspect_ratios}")
        self.clip = bool(clip)
        self.img_size = _pair_or_none("img_size", img_size, int)
        self.step = _pair_or_none("step", step, float)
        self.offset = float(offset)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError("PriorBox takes two inputs [feature map, image]")
        feature, image = (tuple(s) for s in input_shape)
        if len(feature) != 4 or None in feature[1:3]:
            raise ValueError(f"PriorBox needs an NHWC feature map of static size, got {feature}")
        if self.img_size is None and (len(image) != 4 or None in image[1:3]):
            raise ValueError(f"PriorBox needs an NHWC image of static size, got {image}")
        image_hw = self.img_size or (image[1], image[2])
        self._priors = prior_boxes(feature[1:3], image_hw, self.min_sizes, self.max_sizes,
                                   self.aspect_ratios, self.clip, self.variances, self.step,
                                   self.offset)
        super().build(input_shape)

    def call(self, inputs):
        feature = inputs[0]
        # A zero per item gives the constant the (dynamic) batch axis.
        zeros = ops.reshape(ops.zeros_like(feature[:, 0, 0, 0]), (-1, 1, 1))
        return zeros + ops.convert_to_tensor(self._priors, zeros.dtype)[np.newaxis]

    def compute_output_shape(self, input_shape):
        feature = tuple(input_shape[0])
        per_cell = len(self.min_sizes) * len(self.aspect_ratios) + len(self.max_sizes)
        return (feature[0], 2, feature[1] * feature[2] * per_cell * 4)

    def get_config(self):
        config = super().get_config()
        config.update(min_sizes=self.min_sizes, max_sizes=self.max_sizes,
                      aspect_ratios=self.aspect_ratios, clip=self.clip, variances=self.variances,
                      img_size=None if self.img_size is None else list(self.img_size),
                      step=None if self.step is None else list(self.step), offset=self.offset)
        return config


def _box_size(xmin, ymin, xmax, ymax):
    """Caffe's BBoxSize for normalised boxes: 0 for an inverted box, else width * height."""
    inverted = ops.logical_or(xmax < xmin, ymax < ymin)
    return ops.where(inverted, ops.zeros_like(xmin), (xmax - xmin) * (ymax - ymin))


def _jaccard(box, size, boxes, sizes):
    """Caffe's JaccardOverlap of ``box`` (..., 1, 4) with ``boxes`` (..., M, 4)."""
    iw = ops.minimum(box[..., 2], boxes[..., 2]) - ops.maximum(box[..., 0], boxes[..., 0])
    ih = ops.minimum(box[..., 3], boxes[..., 3]) - ops.maximum(box[..., 1], boxes[..., 1])
    overlapping = ops.logical_and(iw > 0, ih > 0)
    inter = iw * ih
    union = ops.where(overlapping, size + sizes - inter, ops.ones_like(inter))
    return ops.where(overlapping, inter / union, ops.zeros_like(inter))


@keras.saving.register_keras_serializable(package="caffe2keras")
class DetectionOutput(keras.layers.Layer):
    """SSD's DetectionOutput; see the module docstring for the output layout."""

    def __init__(self, num_classes, share_location=True, background_label_id=0,
                 code_type="corner", variance_encoded_in_target=False, keep_top_k=-1,
                 confidence_threshold=-FLT_MAX, nms_threshold=0.3, top_k=-1, eta=1.0, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"DetectionOutput num_classes must be a positive int, got "
                             f"{num_classes!r}")
        if code_type not in CODE_TYPES:
            raise ValueError(f"DetectionOutput code_type must be one of {CODE_TYPES}, got "
                             f"{code_type!r}")
        for field, value in (("background_label_id", background_label_id),
                             ("keep_top_k", keep_top_k), ("top_k", top_k)):
            if not _is_int(value):
                raise ValueError(f"DetectionOutput {field} must be an int, got {value!r}")
        if not nms_threshold >= 0:
            raise ValueError(f"DetectionOutput nms_threshold must be >= 0, got {nms_threshold!r}")
        if not 0 < eta <= 1:
            raise ValueError(f"DetectionOutput eta must be in (0, 1], got {eta!r}")
        if share_location and background_label_id == -1:
            raise ValueError("DetectionOutput with shared locations needs a background label "
                             "other than -1 (Caffe aborts)")
        self.num_classes = num_classes
        self.share_location = bool(share_location)
        self.background_label_id = background_label_id
        self.code_type = code_type
        self.variance_encoded_in_target = bool(variance_encoded_in_target)
        self.keep_top_k = keep_top_k
        self.confidence_threshold = float(confidence_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = top_k
        self.eta = float(eta)
        self._labels = [c for c in range(num_classes) if c != background_label_id]

    # --- static sizes -------------------------------------------------------------------------

    def _num_priors(self, input_shape):
        priors = tuple(input_shape[2])
        if len(priors) != 3 or priors[1] != 2 or priors[2] is None or priors[2] % 4:
            raise ValueError(f"DetectionOutput priors must be (batch, 2, P*4), got {priors}")
        return priors[2] // 4

    def _candidates(self, num_priors):
        """Candidates per class after the top_k cut."""
        return num_priors if self.top_k <= -1 else min(self.top_k, num_priors)

    def _rows(self, num_priors):
        total = len(self._labels) * self._candidates(num_priors)
        if self.keep_top_k > -1:
            total = min(total, self.keep_top_k)
        return max(total, 1)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError("DetectionOutput takes three inputs [loc, conf, priors]")
        num_priors = self._num_priors(input_shape)
        loc_classes = 1 if self.share_location else self.num_classes
        for which, shape, per_prior in (("loc", input_shape[0], loc_classes * 4),
                                        ("conf", input_shape[1], self.num_classes)):
            dims = tuple(shape)[1:]
            if None in dims or math.prod(dims) != num_priors * per_prior:
                raise ValueError(f"DetectionOutput {which} input {tuple(shape)} does not hold "
                                 f"{per_prior} values for each of {num_priors} priors")
        self._prior_count = num_priors
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape[0])[0], self._rows(self._num_priors(input_shape)), 7)

    # --- the computation ----------------------------------------------------------------------

    def _decode(self, loc, prior, variance):
        """Caffe's DecodeBBox: loc (N, P, L, 4), prior/variance (N, P, 1, 4) -> (N, P, L, 4)."""
        px0, py0, px1, py1 = (prior[..., i] for i in range(4))
        if self.variance_encoded_in_target:
            d0, d1, d2, d3 = (loc[..., i] for i in range(4))
        else:
            d0, d1, d2, d3 = (variance[..., i] * loc[..., i] for i in range(4))
        if self.code_type == "corner":
            coords = [px0 + d0, py0 + d1, px1 + d2, py1 + d3]
        else:
            pw, ph = px1 - px0, py1 - py0
            if self.code_type == "corner_size":
                coords = [px0 + d0 * pw, py0 + d1 * ph, px1 + d2 * pw, py1 + d3 * ph]
            else:
                cx = d0 * pw + (px0 + px1) / 2.0
                cy = d1 * ph + (py0 + py1) / 2.0
                half_w, half_h = ops.exp(d2) * pw / 2.0, ops.exp(d3) * ph / 2.0
                coords = [cx - half_w, cy - half_h, cx + half_w, cy + half_h]
        return ops.stack(coords, axis=-1)

    @staticmethod
    def _padding(ids, rows):
        """(N, rows, 7) of [i, -1, ..., -1] from the (N, 1, 1) image indices."""
        ids = ops.repeat(ids, rows, axis=1)
        return ops.concatenate([ids, -ops.ones_like(ops.repeat(ids, 6, axis=-1))], axis=-1)

    def call(self, inputs):
        loc, conf, priors = inputs
        num_priors = self._prior_count
        rows = self._rows(num_priors)
        classes, m = len(self._labels), self._candidates(num_priors)
        loc_classes = 1 if self.share_location else self.num_classes
        # the image index per item, (N, 1, 1), from the data so the batch may be dynamic
        ids = ops.cumsum(ops.ones_like(conf[:, :1]), axis=0) - 1.0
        ids = ops.reshape(ids, (-1, 1, 1))
        if classes * m == 0:
            return self._padding(ids, rows)

        loc = ops.reshape(loc, (-1, num_priors, loc_classes, 4))
        conf = ops.reshape(conf, (-1, num_priors, self.num_classes))
        priors = ops.reshape(priors, (-1, 2, num_priors, 1, 4))
        boxes = self._decode(loc, priors[:, 0], priors[:, 1])  # (N, P, L, 4)
        labels = np.asarray(self._labels, dtype=np.int32)
        if self.share_location:
            boxes = ops.repeat(boxes, classes, axis=2)  # (N, P, C', 4)
        else:
            boxes = ops.take(boxes, labels, axis=2)
        boxes = ops.transpose(boxes, (0, 2, 1, 3))  # (N, C', P, 4)
        scores = ops.transpose(ops.take(conf, labels, axis=2), (0, 2, 1))  # (N, C', P)

        # candidates: score > threshold, stably sorted by descending score, top_k kept
        valid = scores > self.confidence_threshold
        key = ops.where(valid, -scores, ops.full_like(scores, np.inf))
        order = ops.argsort(key, axis=-1)[..., :m]  # (N, C', M)
        valid = ops.take_along_axis(valid, order, axis=-1)
        scores = ops.take_along_axis(scores, order, axis=-1)
        boxes = ops.take_along_axis(boxes, ops.expand_dims(order, -1), axis=2)  # (N, C', M, 4)
        sizes = _box_size(*(boxes[..., i] for i in range(4)))

        kept = self._nms(boxes, sizes, valid, m)

        # keep_top_k over the image's classes, then the kept rows in label-major order
        flat_kept = ops.reshape(kept, (-1, classes * m))
        flat_scores = ops.reshape(scores, (-1, classes * m))
        if self.keep_top_k > -1:
            key = ops.where(flat_kept, -flat_scores, ops.full_like(flat_scores, np.inf))
            rank = ops.argsort(ops.argsort(key, axis=-1), axis=-1)
            flat_kept = ops.logical_and(flat_kept, rank < self.keep_top_k)
        chosen = ops.argsort(ops.where(flat_kept, 0, 1), axis=-1)[:, :rows]  # (N, rows)
        present = ops.take_along_axis(flat_kept, chosen, axis=-1)
        flat_labels = np.repeat(labels, m).astype(np.float32)
        label = ops.take(ops.convert_to_tensor(flat_labels, flat_scores.dtype), chosen)
        score = ops.take_along_axis(flat_scores, chosen, axis=-1)
        flat_boxes = ops.reshape(boxes, (-1, classes * m, 4))
        box = ops.take_along_axis(flat_boxes, ops.expand_dims(chosen, -1), axis=1)
        found = ops.concatenate([ops.expand_dims(label, -1), ops.expand_dims(score, -1), box],
                                axis=-1)  # (N, rows, 6)
        found = ops.where(ops.expand_dims(present, -1), found, -ops.ones_like(found))
        return ops.concatenate([ids + ops.zeros_like(found[..., :1]), found], axis=-1)

    def _nms(self, boxes, sizes, valid, m):
        """Greedy NMS over the M sorted candidates of every (image, class) at once."""
        positions = ops.arange(m, dtype="int32")
        threshold = ops.full_like(sizes[..., 0], self.nms_threshold)  # (N, C')
        kept = ops.zeros_like(valid)

        def step(j, state):
            kept, threshold = state
            box = ops.take(boxes, j, axis=2)  # (N, C', 4)
            size = ops.take(sizes, j, axis=2)
            overlap = _jaccard(ops.expand_dims(box, 2), ops.expand_dims(size, -1), boxes, sizes)
            # Caffe keeps the box when every overlap with a kept box is <= the threshold.
            clear = ops.logical_or(ops.logical_not(kept),
                                   overlap <= ops.expand_dims(threshold, -1))
            keep = ops.logical_and(ops.take(valid, j, axis=2), ops.all(clear, axis=-1))
            kept = ops.logical_or(kept, ops.logical_and(ops.expand_dims(keep, -1),
                                                        positions == j))
            if self.eta < 1:
                shrink = ops.logical_and(keep, threshold > 0.5)
                threshold = ops.where(shrink, threshold * self.eta, threshold)
            return kept, threshold

        kept, _ = ops.fori_loop(0, m, step, (kept, threshold))
        return kept

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, share_location=self.share_location,
                      background_label_id=self.background_label_id, code_type=self.code_type,
                      variance_encoded_in_target=self.variance_encoded_in_target,
                      keep_top_k=self.keep_top_k, confidence_threshold=self.confidence_threshold,
                      nms_threshold=self.nms_threshold, top_k=self.top_k, eta=self.eta)
        return config
