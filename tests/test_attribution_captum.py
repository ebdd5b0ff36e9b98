"""Parity with Captum (test-only dependency) in float64 on seeded resnet18 and vgg11, and what
Captum cannot do (ReLU6 / functional ReLUs)."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convlens

captum_attr = pytest.importorskip("captum.attr")
warnings.filterwarnings("ignore", message=".*backward hooks.*")
warnings.filterwarnings("ignore", message="Setting backward hooks.*")

TOL = dict(rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module", params=[("resnet18", "layer4", "layer3", 64), ("vgg11", "features.15", "features.13", 32)])
def setup(request):
    name, cam_layer, neuron_layer, size = request.param
    m = convlens.load_model(name, weights=None).double()
    x = torch.rand(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return m, x, [3, 711], cam_layer, neuron_layer


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_saliency(setup):
    m, x, t, *_ = setup
    ref = captum_attr.Saliency(m).attribute(x.clone(), target=t, abs=True).amax(1)
    r = convlens.saliency(m, x, t)
    torch.testing.assert_close(r.map, ref, **TOL)
    ref_signed = captum_attr.Saliency(m).attribute(x.clone(), target=t, abs=False)
    torch.testing.assert_close(r.attributions, ref_signed, **TOL)


def test_guided_backprop_and_deconvnet(setup):
    m, x, t, *_ = setup
    torch.testing.assert_close(convlens.guided_backprop(m, x, t).attributions,
                               captum_attr.GuidedBackprop(m).attribute(x.clone(), target=t), **TOL)
    torch.testing.assert_close(convlens.deconvnet(m, x, t).attributions,
                               captum_attr.Deconvolution(m).attribute(x.clone(), target=t), **TOL)
    # and they are not the plain gradient
    assert rel(convlens.guided_backprop(m, x, t).attributions, convlens.saliency(m, x, t).attributions) > 0.1


def test_neuron_guided_backprop(setup):
    m, x, _, _, layer = setup
    ref = captum_attr.NeuronGuidedBackprop(m, m.module(layer)).attribute(x.clone(), neuron_selector=(5, 1, 2))
    torch.testing.assert_close(convlens.guided_backprop(m, x, layer=layer, channel=5, unit=(1, 2)).attributions,
                               ref, **TOL)
    ref = captum_attr.NeuronDeconvolution(m, m.module(layer)).attribute(x.clone(), neuron_selector=(5, 1, 2))
    torch.testing.assert_close(convlens.deconvnet(m, x, layer=layer, channel=5, unit=(1, 2)).attributions, ref, **TOL)


@pytest.mark.parametrize("score,baseline,window,stride", [("prob", 0.5, 16, 12), ("logit", "blur", 20, 6)])
def test_occlusion(setup, score, baseline, window, stride):
    m, x, t, *_ = setup
    r = convlens.occlusion(m, x, t, window=window, stride=stride, baseline=baseline, score=score)
    f = (lambda z: m(z).softmax(-1)) if score == "prob" else m
    from convlens.attribution.occlusion import make_baseline
    base = make_baseline(x, baseline, (window, window))
    ref = captum_attr.Occlusion(f).attribute(x.clone(), target=t, sliding_window_shapes=(3, window, window),
                                             strides=(3, stride, stride), baselines=base,
                                             perturbations_per_eval=16)
    assert torch.equal(ref[:, 0], ref[:, 2])  # the window covers all channels
    # Captum casts its result to float32 at the end (format_result: .float()), hence 1e-6 relative
    torch.testing.assert_close(r.map, ref[:, 0].double(), rtol=1e-6, atol=1e-6 * float(ref.abs().max()))


def test_integrated_gradients(setup):
    m, x, t, *_ = setup
    r = convlens.integrated_gradients(m, x, t, steps=16, baseline=0.2)
    ref, delta = captum_attr.IntegratedGradients(m).attribute(x.clone(), target=t, n_steps=16, baselines=0.2,
                                                              return_convergence_delta=True)
    # Captum casts its quadrature weights to float32 (torch.tensor(step_sizes).float()): ~1e-8 relative
    torch.testing.assert_close(r.attributions, ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))
    torch.testing.assert_close(torch.tensor(r.info["delta"], dtype=torch.float64), delta,
                               rtol=1e-5, atol=1e-6 * float(ref.abs().max()))


def test_grad_cam(setup):
    m, x, t, layer, _ = setup
    ref = captum_attr.LayerGradCam(m, m.module(layer)).attribute(x.clone(), target=t)
    r = convlens.grad_cam(m, x, t, layer=layer)
    torch.testing.assert_close(r.map, ref[:, 0], **TOL)
    relu = captum_attr.LayerGradCam(m, m.module(layer)).attribute(x.clone(), target=t, relu_attributions=True)
    torch.testing.assert_close(r.map.clamp(min=0), relu[:, 0], **TOL)


# --- what Captum cannot do -------------------------------------------------------------------------

class FunctionalNet(nn.Module):
    """The same small CNN with its ReLUs written as F.relu in forward (no module to hook)."""

    def __init__(self, seq):
        super().__init__()
        self.c1, self.c2, self.fc = seq[0], seq[3], seq[7]

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.relu(self.c2(h))
        return self.fc(h.mean((2, 3)))


def test_functional_relus_match_module_relus_where_captum_cannot():
    from helpers import tiny_convnet
    seq = tiny_convnet()
    mod = convlens.Model.wrap(seq, input_size=16).double()
    fun = convlens.Model.wrap(FunctionalNet(seq), input_size=16, classes=mod.classes).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(fun(x), mod(x))
    ref = captum_attr.GuidedBackprop(mod).attribute(x.clone(), target=1)
    ours = convlens.guided_backprop(fun, x, 1).attributions
    torch.testing.assert_close(ours, ref, **TOL)
    # Captum on the functional net silently returns the plain gradient
    captum_fun = captum_attr.GuidedBackprop(fun).attribute(x.clone(), target=1)
    torch.testing.assert_close(captum_fun, convlens.saliency(fun, x, 1).attributions, **TOL)
    assert rel(captum_fun, ref) > 0.05


def test_relu6_mobilenet_overridden():
    """MobileNetV2's activations are ReLU6: Captum's GuidedBackprop hooks only nn.ReLU and returns the
    plain gradient; ours overrides them. Check ours against an nn.ReLU twin where no unit exceeds 6."""
    m = convlens.load_model("mobilenet_v2", weights=None).double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    plain = convlens.saliency(m, x, 1).attributions
    captum = captum_attr.GuidedBackprop(m).attribute(x.clone(), target=1)
    torch.testing.assert_close(captum, plain, **TOL)  # Captum: nothing overridden
    ours = convlens.guided_backprop(m, x, 1).attributions
    assert rel(ours, plain) > 0.1
    # swap ReLU6 -> ReLU on a copy: identical wherever activations stay below 6
    import copy
    twin = copy.deepcopy(m)
    for name, mod in list(twin.net.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(mod, cname, nn.ReLU())
    with torch.no_grad():
        acts = []
        hooks = [mm.register_forward_hook(lambda _m, _i, o: acts.append(float(o.max())))
                 for mm in twin.net.modules() if isinstance(mm, nn.ReLU)]
        twin(x)
        for h in hooks:
            h.remove()
    if max(acts) < 6:  # seeded random init keeps activations small at this size
        torch.testing.assert_close(ours, captum_attr.GuidedBackprop(twin).attribute(x.clone(), target=1), **TOL)
    else:
        pytest.skip("activations exceed 6; the ReLU twin is not equivalent")
