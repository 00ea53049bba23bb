"""An OpenVINO IR (``model.xml`` with its weights in ``model.bin``), run by OpenVINO's CPU plugin.

Writing: the Keras model becomes an ``openvino.Model`` (``openvino_trace.convert``), is made
to keep float32 under the CPU plugin's default bf16 precision (``openvino_f32``) and is
saved with its weights in float32 (``save_model`` would otherwise compress them to f16).
The route through the TensorFlow graph was measured against reading our own ONNX file
with OpenVINO's ONNX frontend: it is cheaper on VGG16 (4 s and 1.75 GB peak to the
``openvino.Model``, against 6-8 s and 2.3 GB), and exact on every golden net, where
OpenVINO's own LRN op (what an ONNX LRN becomes) is 0.22 off Caffe's for local_size 3;
the traced graph keeps our LRN layer's arithmetic.

Loading: ``openvino.Core().compile_model(path, "CPU")`` with the plugin's defaults, as a
user would. Inputs and outputs are found by their tensor names, which are the canonical
names. A compiled model that still runs an op below float32 is refused (ExportCheckError),
so the conversion check catches precision loss even where the probe input would not show it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ExportCheckError, OutputError
from .base import Format, Runner, companion
from .openvino_trace import FORMAT, import_openvino

DEVICE = "CPU"


class OpenVINORunner(Runner):
    def __init__(self, path: str):
        ov = import_openvino()
        try:
            self.compiled = ov.Core().compile_model(path, DEVICE)
        except RuntimeError as error:
            raise OutputError(f"{path}: OpenVINO cannot load the model: {error}") from None
        self.inputs = [port.get_any_name() for port in self.compiled.inputs]
        # a tensor that is several outputs of the model carries each of their names
        self.outputs = sorted({name for port in self.compiled.outputs
                               for name in port.get_names()})
        self._request = self.compiled.create_infer_request()
        from .openvino_f32 import below_float32
        narrow = below_float32(self.compiled)
        if narrow:
            raise ExportCheckError(f"{FORMAT}: the {DEVICE} plugin runs {len(narrow)} ops below "
                                   f"float32 by default: {', '.join(narrow[:5])}")

    def run(self, feeds):
        results = self._request.infer({name: np.ascontiguousarray(feeds[name], np.float32)
                                       for name in self.inputs})
        return {name: np.array(value) for port, value in results.items()
                for name in port.get_names()}


class OpenVINOFormat(Format):
    name = "openvino"
    extensions = (".xml",)
    description = FORMAT
    runtime = "openvino"
    batch = "free (-1): any batch size through one file"

    def files(self, path):
        return [path, companion(path, ".bin")]

    def write(self, model, path):
        from .openvino_f32 import keep_float32
        from .openvino_trace import convert
        ov = import_openvino()
        converted = convert(model)
        keep_float32(converted)
        ov.save_model(converted, path, compress_to_fp16=False)

    def load(self, path):
        return OpenVINORunner(path)
