"""numpy transcriptions of the ROI layers' C++ (float32 where Caffe computes in Dtype), for
tests/test_convert_roi.py.

ROIPooling: roi_pooling_layer.cpp of py-faster-rcnn's caffe-fast-rcnn (Forward_cpu).
PSROIPooling: psroi_pooling_layer.cu of R-FCN (PSROIPoolingForward; the CPU forward of the
brocolli build is NOT_IMPLEMENTED)."""

from __future__ import annotations

import math

import numpy as np

f32 = np.float32


def c_round(x) -> int:
    """C's round(): half away from zero."""
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


def _clip(value, extent):
    return min(max(value, 0), extent)


def roi_pooling_windows(roi, pooled_h, pooled_w, spatial_scale, height, width) -> dict:
    """{(ph, pw): (hstart, hend, wstart, wend)}: roi_pooling_layer.cpp's bins of one ROI."""
    scale = f32(spatial_scale)
    start_w, start_h, end_w, end_h = (c_round(f32(v) * scale) for v in roi[1:])
    bin_h = f32(max(end_h - start_h + 1, 1)) / f32(pooled_h)
    bin_w = f32(max(end_w - start_w + 1, 1)) / f32(pooled_w)
    return {(ph, pw): (_clip(math.floor(f32(ph) * bin_h) + start_h, height),
                       _clip(math.ceil(f32(ph + 1) * bin_h) + start_h, height),
                       _clip(math.floor(f32(pw) * bin_w) + start_w, width),
                       _clip(math.ceil(f32(pw + 1) * bin_w) + start_w, width))
            for ph in range(pooled_h) for pw in range(pooled_w)}


def psroi_pooling_windows(roi, group_size, spatial_scale, height, width) -> dict:
    """{(ph, pw): (hstart, hend, wstart, wend)}: psroi_pooling_layer.cu's bins of one ROI."""
    scale = f32(spatial_scale)
    start_w, start_h = f32(c_round(roi[1])) * scale, f32(c_round(roi[2])) * scale
    end_w, end_h = f32(c_round(roi[3]) + 1.0) * scale, f32(c_round(roi[4]) + 1.0) * scale
    bin_h = f32(max(end_h - start_h, 0.1)) / f32(group_size)
    bin_w = f32(max(end_w - start_w, 0.1)) / f32(group_size)
    return {(ph, pw): (_clip(math.floor(f32(ph) * bin_h + start_h), height),
                       _clip(math.ceil(f32(ph + 1) * bin_h + start_h), height),
                       _clip(math.floor(f32(pw) * bin_w + start_w), width),
                       _clip(math.ceil(f32(pw + 1) * bin_w + start_w), width))
            for ph in range(group_size) for pw in range(group_size)}


def roi_pooling(data, rois, pooled_h, pooled_w, spatial_scale):
    """data (N, C, H, W), rois (R, 5) -> (R, C, pooled_h, pooled_w): the max over each bin,
    0 for an empty one."""
    _, channels, height, width = data.shape
    top = np.zeros((len(rois), channels, pooled_h, pooled_w), np.float32)
    for r, roi in enumerate(rois.astype(np.float32)):
        bins = roi_pooling_windows(roi, pooled_h, pooled_w, spatial_scale, height, width)
        for (ph, pw), (hstart, hend, wstart, wend) in bins.items():
            if hend > hstart and wend > wstart:
                window = data[int(roi[0]), :, hstart:hend, wstart:wend]
                top[r, :, ph, pw] = window.max(axis=(1, 2))
    return top


def psroi_pooling(data, rois, output_dim, group_size, spatial_scale):
    """data (N, output_dim * G * G, H, W), rois (R, 5) -> (R, output_dim, G, G): the mean of
    channel (c * G + ph) * G + pw over bin (ph, pw), 0 for an empty one."""
    _, _, height, width = data.shape
    top = np.zeros((len(rois), output_dim, group_size, group_size), np.float32)
    for r, roi in enumerate(rois.astype(np.float32)):
        bins = psroi_pooling_windows(roi, group_size, spatial_scale, height, width)
        for (ph, pw), (hstart, hend, wstart, wend) in bins.items():
            if hend <= hstart or wend <= wstart:
                continue
            for c in range(output_dim):
                channel = (c * group_size + ph) * group_size + pw
                window = data[int(roi[0]), channel, hstart:hend, wstart:wend]
                top[r, c, ph, pw] = window.sum(dtype=np.float64) / window.size
    return top
