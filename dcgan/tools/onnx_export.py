"""`dcgan export --format onnx`: the generator as an ONNX model that onnxruntime runs without TensorFlow or dcgan.

Converted by tf2onnx (an optional extra: `pip install '.[onnx]'`) from the same traced function the SavedModel
serves (`handle.serving_endpoint`): inputs `z` float32 (batch, latent_dim) and, for a conditional generator, `label`
int32 (batch,); output `images` float32 (batch, H, W, C) in [-1, 1], NHWC, which `(images + 1) * 127.5`, rounded and
clipped, turns into the pixels `dcgan sample` writes. The model's metadata (metadata_props) says so in words and
carries the provenance (run, step, which copy) and the class names, index = label.
"""

from __future__ import annotations

import json
from pathlib import Path

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import atomic_path

OPSET = 17  # onnxruntime has run opset 17 since 1.14 (2023); every op of the generator is in it
INSTALL = "pip install 'dcgan[onnx]' (tf2onnx and onnxruntime)"
METADATA_KEY = "dcgan_export"


def _tf2onnx():
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise DcganError(f"--format onnx needs tf2onnx and onnx, which are not installed: {INSTALL}") from None
    return tf2onnx, onnx


def onnx_proto(model, provenance: dict):
    """The converted model, its batch axis named and its metadata set."""
    import tensorflow as tf

    from dcgan.tools.handle import serving_endpoint

    tf2onnx, onnx = _tf2onnx()
    serve, signature = serving_endpoint(model)
    function = tf.function(lambda *inputs: {"images": serve(*inputs)}, input_signature=signature)
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    except Exception as e:  # the converter's own errors are of many kinds: say which op it could not convert
        raise DcganError(f"--format onnx: tf2onnx could not convert this generator: {first_line(e)}") from None
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    inputs = {spec.name: [None, *spec.shape[1:]] for spec in signature}
    onnx.helper.set_model_props(proto, {
        METADATA_KEY: json.dumps(provenance),
        "classes": json.dumps(provenance["classes"]),
        "inputs": json.dumps(inputs),
        "output": json.dumps({"images": [None, *model.outputs[0].shape[1:]]}),
        "usage": "images: float32 NHWC in [-1, 1]; pixels = clip(round((images + 1) * 127.5), 0, 255) as uint8; "
                 "z: float32 standard normal latents" + ("; label: int32 class index into classes" if len(inputs) > 1 else ""),
    })
    return proto


def write_onnx(model, path: Path, provenance: dict) -> Path:
    """Convert, then write atomically (a failed conversion or write leaves no half file)."""
    proto = onnx_proto(model, provenance)
    _, onnx = _tf2onnx()
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def is_onnx_export(path: Path) -> bool:
    """What --force may replace: an ONNX file this command wrote (its metadata names it), nothing else."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        _, onnx = _tf2onnx()
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX, damaged, or unreadable: not ours to replace
        return False
    return any(p.key == METADATA_KEY for p in proto.metadata_props)
