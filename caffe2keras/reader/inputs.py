"""Where a net's inputs and their shapes come from.

Caffe nets declare inputs four ways: net-level ``input`` + ``input_dim`` (four per input),
``input`` + ``input_shape``, an ``Input`` layer, or (train_val files) a data layer
whose shape lives in the database it reads, so only its transform tells us the
spatial size and the first convolution's weights tell us the channels.
"""

from __future__ import annotations

from ..errors import StructureError, WeightsMismatchError
from .binary import blob_shape

DATA_LAYER_TYPES = frozenset({
    "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData",
    "AnnotatedData", "VideoData",
})


def net_level_inputs(net_param, path: str) -> dict[str, tuple[int, ...] | None]:
    names = list(net_param.input)
    if net_param.input_shape:
        if len(net_param.input_shape) != len(names):
            raise StructureError(f"{path}: {len(names)} inputs but {len(net_param.input_shape)} "
                                 "input_shape entries")
        return {name: tuple(shape.dim) for name, shape in zip(names, net_param.input_shape)}
    if net_param.input_dim:
        dims = list(net_param.input_dim)
        if len(dims) != 4 * len(names):
            raise StructureError(f"{path}: {len(names)} inputs need {4 * len(names)} input_dim values, "
                                 f"found {len(dims)}")
        return {name: tuple(dims[4 * i: 4 * i + 4]) for i, name in enumerate(names)}
    return {name: None for name in names}


def input_layer_shapes(layer) -> dict[str, tuple[int, ...]]:
    shapes = layer.input_param.shape
    if len(shapes) not in (0, 1, len(layer.top)):  # none: given by input_shapes
        raise StructureError(f"layer {layer.name!r} (Input): {len(layer.top)} tops but "
                             f"{len(shapes)} shapes")
    if not shapes:
        return {top: None for top in layer.top}
    return {top: tuple((shapes[i] if len(shapes) > 1 else shapes[0]).dim)
            for i, top in enumerate(layer.top)}


def missing_shape_hint(layer) -> str:
    """Why a data layer's image shape is unknown, for the error asking for --input-shape."""
    if layer.type in ("Data", "AnnotatedData", "ImageData", "WindowData", "VideoData"):
        return (f"{layer.type} layer {layer.name!r} reads its images from "
                f"{'files' if layer.type == 'ImageData' else 'a database'}, and its prototxt "
                "gives no crop_size (or new_height/new_width) and channels")
    return f"{layer.type} layer {layer.name!r} reads its blobs from files"


def data_layer_shapes(layer, channels: int | None) -> dict[str, tuple[int, ...] | None]:
    """Shapes of a data layer's tops as far as the prototxt tells them (None: unknown)."""
    if layer.type == "MemoryData":
        p = layer.memory_data_param
        return {layer.top[0]: (p.batch_size, p.channels, p.height, p.width)}
    if layer.type == "DummyData":
        p = layer.dummy_data_param
        if p.shape:
            return {top: tuple(p.shape[min(i, len(p.shape) - 1)].dim) for i, top in enumerate(layer.top)}
        if p.num:
            def pick(values, i):
                return values[min(i, len(values) - 1)]
            return {top: (pick(p.num, i), pick(p.channels, i), pick(p.height, i), pick(p.width, i))
                    for i, top in enumerate(layer.top)}
        return {top: None for top in layer.top}
    size = _spatial_size(layer)
    batch = _batch_size(layer)
    data_shape = (batch, channels, size[0], size[1]) if size and channels else None
    # Only the first top is the image; the others (labels) matter only if something reads them.
    return {top: (data_shape if i == 0 else None) for i, top in enumerate(layer.top)}


def _spatial_size(layer) -> tuple[int, int] | None:
    transform = layer.transform_param
    if transform.crop_size:
        return (transform.crop_size, transform.crop_size)
    if transform.crop_h and transform.crop_w:  # the SSD fork's rectangular crop
        return (transform.crop_h, transform.crop_w)
    if layer.type == "ImageData" and layer.image_data_param.new_height:
        p = layer.image_data_param
        return (p.new_height, p.new_width)
    return None


def _batch_size(layer) -> int:
    for field in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param"):
        if layer.HasField(field) and getattr(layer, field).batch_size:
            return getattr(layer, field).batch_size
    return 1


def data_channels(layer, reader_layers, weights: dict[str, list]) -> int | None:
    """Channels of a data layer's image: from per-channel means, the decoder's forced colour
    or grey, ImageData's is_color, else from the weights of the first convolution that reads
    it."""
    transform = layer.transform_param
    if len(transform.mean_value) > 1:
        return len(transform.mean_value)
    if transform.force_color or transform.force_gray:  # the decoder's forced channels
        return 3 if transform.force_color else 1
    if layer.type == "ImageData":  # decoded from image files: colour (3) unless is_color: false
        return 3 if layer.image_data_param.is_color else 1
    image = layer.top[0] if layer.top else None
    for reader in reader_layers:
        if image in reader.bottom and reader.type == "Convolution":
            blobs = weights.get(reader.name)
            if not blobs:
                return None
            shape = blob_shape(blobs[0])
            if len(shape) < 3 or shape[1] <= 0 or reader.convolution_param.group <= 0:
                raise WeightsMismatchError(
                    f"layer {reader.name!r} (Convolution): weight blob of shape {shape} tells "
                    f"nothing of the channels of {layer.name!r}, the data layer it reads")
            return shape[1] * reader.convolution_param.group
    return None
