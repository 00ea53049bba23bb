"""ROIPooling, PSROIPooling, Proposal and Python layers are refused by name with the reason
(converters/roi.py), in the error and in the layer table; the feature part of such a net
converts with --outputs."""

from __future__ import annotations

import pytest

import caffe2keras
from caffe2keras.errors import UnsupportedLayerError
from caffe2keras.layer_table import layer_table_markdown
from numpy_forward import write_net

NET = """name: "rcnn"
input: "data"
input_shape { dim: 1 dim: 3 dim: 12 dim: 10 }
input: "im_info"
input_shape { dim: 1 dim: 3 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "rpn" type: "%s" bottom: "conv" bottom: "im_info" top: "rois" %s }
layer { name: "pool" type: "%s" bottom: "conv" bottom: "rois" top: "pool" %s }
"""

PROPOSALS = {
    "Python": "python_param { module: 'rpn.proposal_layer' layer: 'ProposalLayer' }",
    "Proposal": "",
}
POOLS = {
    "ROIPooling": "roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.0625 }",
    "PSROIPooling": "psroi_pooling_param { spatial_scale: 0.0625 output_dim: 1 group_size: 2 }",
}


@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("proposal", list(PROPOSALS))
def test_refused_by_name_with_the_reason(tmp_path, proposal, pool):
    text = NET % (proposal, PROPOSALS[proposal], pool, POOLS[pool])
    prototxt, _ = write_net(tmp_path, text)
    with pytest.raises(UnsupportedLayerError) as refused:
        caffe2keras.convert(prototxt)
    message = str(refused.value)
    assert f"'rpn' ({proposal}: " in message and f"'pool' ({pool}: " in message
    assert "second batch axis" in message or "share one batch axis" in message
    assert "--outputs" in message
    # the feature part converts
    with pytest.warns(UserWarning, match="fillers"):
        model = caffe2keras.convert(prototxt, outputs=["conv"])
    assert [t.shape[1:] for t in model.outputs] == [(10, 8, 4)]


def test_the_layer_table_gives_the_reasons():
    table = layer_table_markdown()
    rows = [line for line in table.splitlines()
            if any(t in line.split("|")[1] for t in ("ROIPooling", "Proposal", "Python"))]
    assert len(rows) == 3 and all("refused: " in row for row in rows)
