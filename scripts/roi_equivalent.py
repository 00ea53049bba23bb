"""Write fixtures/roi_pooling/caffe_equivalent.prototxt: what real Caffe runs for the
fixture's deploy.prototxt, whose ROIPooling this build lacks and whose PSROIPooling has no CPU
forward (NOT_IMPLEMENTED). For the fixture's fixed ROIs, each bin's window (computed here as
the layers' C++ does, tests/roi_reference.py) is a Crop of its image (Slice axis 0) at the
window's offset, to the size of a DummyData reference, then a global Pooling: MAX over all
channels (ROIPooling), AVE of the bin's one channel (c * G + ph) * G + pw (PSROIPooling);
Concat assembles the bins (axis 3, then 2) and the ROIs (axis 0) into a top carrying the layer's
name. The rois input is silenced. Run: python scripts/roi_equivalent.py"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from roi_reference import psroi_pooling_windows, roi_pooling_windows  # noqa: E402

# must agree with fixtures/roi_pooling/deploy.prototxt and scripts/make_golden.py
IMAGES, CHANNELS, HEIGHT, WIDTH = 2, 3, 14, 11  # data; conv keeps 14 x 11, 8 channels
MAP_CHANNELS = 8
ROIS = ((0, 2, 4, 12, 18), (1, 0, 6, 16, 16), (1, 9, 1, 19, 7), (0, -3, 17, 30, 26))
POOLED_H, POOLED_W, ROI_SCALE = 2, 3, 0.5
OUTPUT_DIM, GROUP, PS_SCALE = 2, 2, 0.5


HEADER = """\
# What real Caffe (the brocolli-caffe build) runs for deploy.prototxt: this build has no
# ROIPooling, and PSROIPooling's CPU forward is NOT_IMPLEMENTED. Written by
# scripts/roi_equivalent.py for the fixture's fixed ROIs: each bin's window (as the layers'
# C++ computes it) is a Crop of its image at the window's offset, then a global Pooling, MAX
# over all channels (ROIPooling) or AVE of channel (c * G + ph) * G + pw (PSROIPooling);
# Concats assemble bins and ROIs into the tops "roi" and "ps".
"""


def roi_windows(roi):
    return roi_pooling_windows(roi, POOLED_H, POOLED_W, ROI_SCALE, HEIGHT, WIDTH)


def psroi_windows(roi):
    return psroi_pooling_windows(roi, GROUP, PS_SCALE, HEIGHT, WIDTH)


def layer(name, type_, bottoms, tops, param=""):
    lines = [f'layer {{ name: "{name}" type: "{type_}"']
    lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{t}"' for t in tops]
    if param:
        lines.append(f"  {param}")
    return "\n".join(lines) + " }\n"


def concat(name, parts, axis):
    return layer(name, "Concat", parts, [name], f"concat_param {{ axis: {axis} }}")


def build() -> str:
    out = [HEADER,
           'name: "roi_pooling"\n',
           layer("input", "Input", [], ["data", "rois"],
                 f"input_param {{ shape {{ dim: {IMAGES} dim: {CHANNELS} dim: {HEIGHT} "
                 f"dim: {WIDTH} }} shape {{ dim: {len(ROIS)} dim: 5 }} }}"),
           layer("conv", "Convolution", ["data"], ["conv"],
                 f"convolution_param {{ num_output: {MAP_CHANNELS} kernel_size: 3 pad: 1 }}"),
           layer("silence_rois", "Silence", ["rois"], []),
           layer("conv_items", "Slice", ["conv"], [f"conv_{n}" for n in range(IMAGES)],
                 "slice_param { axis: 0 }")]
    for n in range(IMAGES):
        out.append(layer(f"conv_{n}_channels", "Slice", [f"conv_{n}"],
                         [f"conv_{n}_c{c}" for c in range(MAP_CHANNELS)],
                         "slice_param { axis: 1 }"))
    sizes = set()

    def window(prefix, source, box, pool):
        hs, he, ws, we = box
        sizes.add((he - hs, we - ws))
        ref = f"size_{he - hs}x{we - ws}"
        return [layer(f"{prefix}/crop", "Crop", [source, ref], [f"{prefix}/crop"],
                      f"crop_param {{ axis: 2 offset: {hs} offset: {ws} }}"),
                layer(prefix, "Pooling", [f"{prefix}/crop"], [prefix],
                      f"pooling_param {{ pool: {pool} kernel_h: {he - hs} kernel_w: {we - ws} }}")]

    body = []
    for kind, windows, (rows, cols) in (("roi", roi_windows, (POOLED_H, POOLED_W)),
                                        ("ps", psroi_windows, (GROUP, GROUP))):
        per_roi = []
        for r, roi in enumerate(ROIS):
            boxes, row_parts = windows(roi), []
            for ph in range(rows):
                bins = []
                for pw in range(cols):
                    prefix = f"{kind}/r{r}/{ph}_{pw}"
                    if kind == "roi":
                        body += window(prefix, f"conv_{roi[0]}", boxes[ph, pw], "MAX")
                    else:
                        channels = []
                        for c in range(OUTPUT_DIM):
                            channel = (c * GROUP + ph) * GROUP + pw
                            body += window(f"{prefix}/c{c}", f"conv_{roi[0]}_c{channel}",
                                           boxes[ph, pw], "AVE")
                            channels.append(f"{prefix}/c{c}")
                        body.append(concat(prefix, channels, 1))
                    bins.append(prefix)
                body.append(concat(f"{kind}/r{r}/{ph}", bins, 3))
                row_parts.append(f"{kind}/r{r}/{ph}")
            body.append(concat(f"{kind}/r{r}", row_parts, 2))
            per_roi.append(f"{kind}/r{r}")
        body.append(concat(kind, per_roi, 0))
    for h, w in sorted(sizes):
        if h <= 0 or w <= 0:
            raise ValueError("an empty bin: choose other ROIs (Crop cannot take 0 rows)")
        out.append(layer(f"size_{h}x{w}", "DummyData", [], [f"size_{h}x{w}"],
                         f"dummy_data_param {{ shape {{ dim: 1 dim: 1 dim: {h} dim: {w} }} }}"))
    out += body
    out.append(layer("fc", "InnerProduct", ["roi"], ["fc"],
                     "inner_product_param { num_output: 4 }"))
    return "".join(out)


if __name__ == "__main__":
    path = os.path.join(ROOT, "fixtures", "roi_pooling", "caffe_equivalent.prototxt")
    with open(path, "w") as handle:
        handle.write(build())
    print(path)
