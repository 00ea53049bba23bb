"""ROIPooling (Faster R-CNN) and PSROIPooling (R-FCN): one pooled map per region of interest.

Inputs [features, rois]: features (N, H, W, C) (NHWC), rois (R, 5) rows
[batch index, x1, y1, x2, y2] in input-image pixels. R is the rois input's own axis 0,
independent of N; the output is (R, pooled_h, pooled_w, C) for ROIPooling and
(R, group_size, group_size, output_dim) for PSROIPooling.

ROIPooling (roi_pooling_layer.cpp of py-faster-rcnn's caffe-fast-rcnn): start/end
``round(coord * spatial_scale)`` (C's round, half away from zero), roi size
``max(end - start + 1, 1)``, bin ``[floor(p * size / pooled) + start,
ceil((p + 1) * size / pooled) + start)`` clipped to the map, max over the bin, 0 for an
empty bin.

PSROIPooling (psroi_pooling_layer.cu of R-FCN): start ``round(x1) * spatial_scale``, end
``(round(x2) + 1) * spatial_scale`` (floats), roi size ``max(end - start, 0.1)``, bin
``[floor(p * size / G + start), ceil((p + 1) * size / G + start))`` clipped to the map, the
average over the bin of input channel ``(c * G + ph) * G + pw``, 0 for an empty bin.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

_LOWEST = -3.4028234663852886e38  # -FLT_MAX, Caffe's initial maximum


def _c_round(x):
    """C's round, half away from zero: floor(x + 0.5) for x >= 0, ceil(x - 0.5) below, with
    no sign, select or negation (OpenVINO's CPU plugin rewrites those into ops it runs in
    bf16)."""
    return ops.floor(ops.maximum(x, 0.0) + 0.5) + ops.ceil(ops.minimum(x, 0.0) + (-0.5))


def _bin_masks(start, size, pooled: int, extent: int, add_start_inside: bool):
    """(R, pooled, extent) booleans: whether position i lies in bin p of each ROI."""
    p = ops.arange(pooled, dtype="float32")
    bin_size = ops.expand_dims(size / float(pooled), 1)  # (R, 1)
    start = ops.expand_dims(start, 1)
    if add_start_inside:  # PSROIPooling: floor(p * bin + start)
        low = ops.floor(p * bin_size + start)
        high = ops.ceil((p + 1.0) * bin_size + start)
    else:  # ROIPooling: floor(p * bin) + start
        low = ops.floor(p * bin_size) + start
        high = ops.ceil((p + 1.0) * bin_size) + start
    low = ops.clip(low, 0.0, float(extent))
    high = ops.clip(high, 0.0, float(extent))
    i = ops.reshape(ops.arange(extent, dtype="float32"), (1, 1, extent))
    inside = ops.logical_and(i >= ops.expand_dims(low, 2), i < ops.expand_dims(high, 2))
    return inside, high - low  # the bin's length, <= 0 when empty


def _pooled_maps(features, rois):
    """The feature map of each ROI's image, (R, H, W, C), and the rois as float32."""
    rois = ops.cast(rois, "float32")
    index = ops.cast(rois[:, 0], "int32")
    return ops.take(features, index, axis=0), rois


class _RoiLayer(keras.layers.Layer):
    # the rois input (position 1) has its own axis 0, R, beside the features' N
    # (read by caffe2keras.formats.base.own_batch_inputs)
    own_batch_inputs = (1,)

    def probe_values(self, position, batch, rng):
        """2 * batch + 1 ROIs over ``batch`` images for a conversion check: batch indices
        < batch, boxes in input-image pixels (the map's extent / spatial_scale), some
        reaching past the image, some of a pixel or less."""
        if position != 1:
            raise ValueError(f"{type(self).__name__}: input {position} takes no own values")
        count = 2 * batch + 1
        height, width = (extent / self.spatial_scale for extent in self._map_size)
        low = rng.uniform(-0.2, 1.0, (count, 2)) * (width, height)
        size = rng.uniform(0.0, 0.8, (count, 2)) * (width, height)
        size[::4] = rng.uniform(0.0, 1.0, (len(size[::4]), 2))  # a pixel or less
        index = np.arange(count) % batch
        return np.concatenate([index[:, None], low, low + size], axis=1).astype(np.float32)

    def _check(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__} takes [features, rois], "
                             f"got {len(input_shape)} inputs")
        features, rois = (tuple(s) for s in input_shape)
        if len(features) != 4 or len(rois) != 2 or rois[1] != 5:
            raise ValueError(f"{type(self).__name__} needs features (N, H, W, C) and rois "
                             f"(R, 5), got {features} and {rois}")
        self._map_size = features[1:3]
        return features, rois


@keras.saving.register_keras_serializable(package="caffe2keras")
class ROIPooling(_RoiLayer):
    """Faster R-CNN's max pooling of each ROI into pooled_h x pooled_w bins."""

    def __init__(self, pooled_h, pooled_w, spatial_scale, **kwargs):
        super().__init__(**kwargs)
        self.pooled_h, self.pooled_w = int(pooled_h), int(pooled_w)
        self.spatial_scale = float(spatial_scale)
        if self.pooled_h <= 0 or self.pooled_w <= 0:
            raise ValueError(f"ROIPooling pooled_h {pooled_h} and pooled_w {pooled_w} must be > 0")

    def build(self, input_shape):
        self._check(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        features, rois = inputs
        height, width = features.shape[1], features.shape[2]
        maps, rois = _pooled_maps(features, rois)
        scale = ops.cast(self.spatial_scale, "float32")
        x1, y1, x2, y2 = (_c_round(rois[:, k] * scale) for k in (1, 2, 3, 4))
        # end - start + 1 with -start = c_round(v * -scale): OpenVINO's CPU plugin turns a
        # Subtract of the start into a Multiply by -1 that it runs in bf16
        height_, width_ = (end + _c_round(rois[:, k] * -scale) + 1.0
                           for end, k in ((y2, 2), (x2, 1)))
        rows, _ = _bin_masks(y1, ops.maximum(height_, 1.0), self.pooled_h, height, False)
        cols, _ = _bin_masks(x1, ops.maximum(width_, 1.0), self.pooled_w, width, False)
        pooled = []
        for ph in range(self.pooled_h):
            row = ops.reshape(rows[:, ph], (-1, height, 1, 1))
            # max over the bin's rows: (R, W, C); -FLT_MAX where the bin has no rows
            over_rows = ops.max(ops.where(row, maps, _LOWEST), axis=1)
            for pw in range(self.pooled_w):
                col = ops.reshape(cols[:, pw], (-1, width, 1))
                pooled.append(ops.max(ops.where(col, over_rows, _LOWEST), axis=1))
        top = ops.stack(pooled, axis=1)  # (R, ph * pw, C)
        # an empty bin (no row or no column inside the map) gives 0
        empty = ops.logical_or(
            ops.expand_dims(ops.logical_not(ops.any(rows, axis=2)), 2),
            ops.expand_dims(ops.logical_not(ops.any(cols, axis=2)), 1))
        empty = ops.reshape(empty, (-1, self.pooled_h * self.pooled_w, 1))
        top = ops.where(empty, 0.0, top)
        return ops.reshape(top, (-1, self.pooled_h, self.pooled_w, features.shape[3]))

    def compute_output_shape(self, input_shape):
        features, rois = self._check(input_shape)
        return (rois[0], self.pooled_h, self.pooled_w, features[3])

    def get_config(self):
        config = super().get_config()
        config.update(pooled_h=self.pooled_h, pooled_w=self.pooled_w,
                      spatial_scale=self.spatial_scale)
        return config


@keras.saving.register_keras_serializable(package="caffe2keras")
class PSROIPooling(_RoiLayer):
    """R-FCN's position-sensitive average pooling: bin (ph, pw) of output channel c averages
    input channel (c * G + ph) * G + pw."""

    def __init__(self, output_dim, group_size, spatial_scale, **kwargs):
        super().__init__(**kwargs)
        self.output_dim, self.group_size = int(output_dim), int(group_size)
        self.spatial_scale = float(spatial_scale)
        if self.output_dim <= 0 or self.group_size <= 0:
            raise ValueError(f"PSROIPooling output_dim {output_dim} and group_size "
                             f"{group_size} must be > 0")

    def build(self, input_shape):
        features, _ = self._check(input_shape)
        wanted = self.output_dim * self.group_size ** 2
        if features[3] != wanted:
            raise ValueError(f"PSROIPooling needs output_dim * group_size^2 = {wanted} "
                             f"channels, got {features[3]}")
        super().build(input_shape)

    def call(self, inputs):
        features, rois = inputs
        height, width, groups = features.shape[1], features.shape[2], self.group_size
        maps, rois = _pooled_maps(features, rois)
        scale = ops.cast(self.spatial_scale, "float32")
        x1, y1 = _c_round(rois[:, 1]) * scale, _c_round(rois[:, 2]) * scale
        x2, y2 = (_c_round(rois[:, 3]) + 1.0) * scale, (_c_round(rois[:, 4]) + 1.0) * scale
        rows, row_len = _bin_masks(y1, ops.maximum(y2 - y1, 0.1), groups, height, True)
        cols, col_len = _bin_masks(x1, ops.maximum(x2 - x1, 0.1), groups, width, True)
        # (R, G, G); 0 when either side is empty
        area = (ops.expand_dims(ops.maximum(row_len, 0.0), 2)
                * ops.expand_dims(ops.maximum(col_len, 0.0), 1))
        pooled = []
        for ph in range(groups):
            row = ops.cast(ops.reshape(rows[:, ph], (-1, height, 1, 1)), "float32")
            over_rows = ops.sum(row * maps, axis=1)  # (R, W, C)
            for pw in range(groups):
                col = ops.cast(ops.reshape(cols[:, pw], (-1, width, 1)), "float32")
                total = ops.sum(col * over_rows, axis=1)  # (R, C)
                pooled.append(total[:, ph * groups + pw::groups * groups])  # (R, output_dim)
        top = ops.reshape(ops.stack(pooled, axis=1), (-1, groups, groups, self.output_dim))
        area = ops.expand_dims(area, 3)
        return ops.where(area > 0, top / ops.maximum(area, 1.0), 0.0)

    def compute_output_shape(self, input_shape):
        _, rois = self._check(input_shape)
        return (rois[0], self.group_size, self.group_size, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim, group_size=self.group_size,
                      spatial_scale=self.spatial_scale)
        return config
