"""Shared fixtures. Threads are budgeted (2 cores here); every test starts from a fixed seed."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("CONVLENS_TEST_THREADS", "2")))


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory):
    """ONNX exports made by the suite go to a temporary folder, not the user's cache (docs/forward.md)."""
    old = os.environ.get("CONVLENS_CACHE")
    os.environ["CONVLENS_CACHE"] = str(tmp_path_factory.mktemp("convlens-cache"))
    yield
    if old is None:
        os.environ.pop("CONVLENS_CACHE", None)
    else:
        os.environ["CONVLENS_CACHE"] = old


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def offline_model():
    """The default model: MobileNetV2 with torchvision's IMAGENET1K_V1 weights (offline file)."""
    import convlens
    return convlens.load_model()


@pytest.fixture(scope="session")
def cat(offline_model):
    import convlens
    return convlens.sample_image("chelsea", offline_model.input_size)
