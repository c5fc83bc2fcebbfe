import numpy as np
import pytest
import torch
from torch import nn

from sksegment.models import FCN, MODELS, UNet, build_model, downsampling_factor


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth, width, in_ch, n_classes, hw", [
    (1, 2, 1, 2, (6, 10)),
    (2, 4, 3, 5, (12, 20)),
    (3, 3, 2, 1, (24, 8)),
    (4, 2, 1, 3, (16, 48)),
])
@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_unet_output_shape(depth, width, in_ch, n_classes, hw, upsample):
    net = UNet(in_ch, n_classes, depth=depth, width=width, upsample=upsample)
    assert net.downsampling_factor == 2 ** depth
    x = torch.randn(2, in_ch, *hw)
    out = net(x)
    assert out.shape == (2, n_classes, *hw)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("depth, width, in_ch, n_classes, hw", [
    (1, 2, 1, 2, (6, 10)),
    (2, 4, 3, 5, (12, 20)),
    (3, 3, 2, 1, (24, 8)),
])
def test_fcn_output_shape(depth, width, in_ch, n_classes, hw):
    net = FCN(in_ch, n_classes, depth=depth, width=width)
    assert net.downsampling_factor == 2 ** depth
    out = net(torch.randn(2, in_ch, *hw))
    assert out.shape == (2, n_classes, *hw)


@pytest.mark.parametrize("norm", ["batch", "instance", "group", None])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu"])
def test_norms_and_activations(norm, activation):
    for cls in (UNet, FCN):
        net = cls(1, 3, depth=2, width=6, norm=norm, activation=activation)
        out = net(torch.randn(2, 1, 8, 8))
        assert out.shape == (2, 3, 8, 8)
        norm_types = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)
        has_norm = any(isinstance(m, norm_types) for m in net.modules())
        assert has_norm == (norm is not None)
        convs3 = [m for m in net.modules()
                  if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert all((c.bias is None) == (norm is not None) for c in convs3)


def test_group_norm_with_odd_channel_count():
    net = UNet(1, 2, depth=1, width=3, norm="group")
    groups = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert groups and all(m.num_channels % m.num_groups == 0 for m in groups)
    assert net(torch.randn(1, 1, 4, 4)).shape == (1, 2, 4, 4)


def test_unet_channel_plan():
    net = UNet(1, 2, depth=3, width=5)
    first_convs = [block[0] for block in net.encoder]
    assert [c.out_channels for c in first_convs] == [5, 10, 20, 40]
    assert net.classifier.kernel_size == (1, 1)
    assert net.classifier.out_channels == 2


@pytest.mark.parametrize("cls", [UNet, FCN])
def test_size_not_multiple_raises(cls):
    net = cls(1, 2, depth=2, width=2)
    with pytest.raises(ValueError, match=r"H=10, W=8"):
        net(torch.zeros(1, 1, 10, 8))
    with pytest.raises(ValueError, match="in_channels=1"):
        net(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        net(torch.zeros(1, 8, 8))


@pytest.mark.parametrize("cls", [UNet, FCN])
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"in_channels": 0}, ValueError, "in_channels"),
    ({"n_classes": 2.5}, TypeError, "n_classes"),
    ({"depth": 0}, ValueError, "depth"),
    ({"width": True}, TypeError, "width"),
    ({"norm": "layer"}, ValueError, "norm"),
    ({"activation": "tanh"}, ValueError, "activation"),
])
def test_constructor_errors(cls, kwargs, exc, match):
    params = {"in_channels": 1, "n_classes": 2, "depth": 2, "width": 2} | kwargs
    with pytest.raises(exc, match=match):
        cls(**params)


def test_unet_specific_errors():
    with pytest.raises(ValueError, match="upsample"):
        UNet(1, 2, upsample="nearest")
    with pytest.raises(ValueError, match="dropout"):
        UNet(1, 2, dropout=1.0)
    with pytest.raises(TypeError, match="dropout"):
        UNet(1, 2, dropout="0.1")
    with pytest.raises(ValueError, match="dropout must be a finite number"):
        UNet(1, 2, dropout=float("nan"))
    with pytest.raises(ValueError, match="did you mean 'group'"):
        UNet(1, 2, norm="groups")
    with pytest.raises(ValueError, match="skips"):
        FCN(1, 2, depth=2, skips=2)


@pytest.mark.parametrize("cls, kwargs", [
    (UNet, {"upsample": "transpose"}),
    (UNet, {"upsample": "bilinear"}),
    (FCN, {}),
])
def test_gradient_reaches_first_layer(cls, kwargs):
    torch.manual_seed(0)
    net = cls(2, 3, depth=2, width=4, **kwargs)
    out = net(torch.randn(2, 2, 8, 8))
    out.square().mean().backward()
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 2
    assert first.weight.grad is not None
    assert first.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_dropout_active_only_in_training():
    torch.manual_seed(0)
    net = UNet(1, 2, depth=1, width=4, dropout=0.5)
    x = torch.randn(1, 1, 8, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


def test_kaiming_init_scale():
    torch.manual_seed(0)
    net = UNet(1, 2, depth=2, width=16)
    conv = net.encoder[1][0]  # 3x3, 16 -> 32
    fan_in = conv.in_channels * 9
    assert conv.weight.std().item() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.1)


@pytest.mark.parametrize("cls", [UNet, FCN])
def test_parameter_count_grows_with_width_and_depth(cls):
    counts = [_n_params(cls(1, 2, depth=2, width=w)) for w in (2, 4, 8)]
    assert counts[0] < counts[1] < counts[2]
    # 3x3 convolutions dominate: doubling the width roughly quadruples the count.
    assert 3 < counts[2] / counts[1] < 4.5
    assert _n_params(cls(1, 2, depth=2, width=4)) < _n_params(cls(1, 2, depth=3, width=4))


def test_fcn_skips_start_at_zero_and_learn():
    torch.manual_seed(0)
    assert len(FCN(1, 2, depth=3, width=4).skip_scores) == 2
    assert len(FCN(1, 2, depth=1, width=4).skip_scores) == 0
    fused = FCN(1, 2, depth=3, width=4, skips=2)
    assert [c.in_channels for c in fused.skip_scores] == [8, 4]
    for conv in fused.skip_scores:
        assert conv.weight.abs().sum() == 0
    x = torch.randn(2, 1, 16, 16)
    fused(x).square().sum().backward()
    assert all(c.weight.grad.abs().sum() > 0 for c in fused.skip_scores)


def _overfit(net, steps=60, lr=0.01):
    # One 16x16 image with a bright-textured square on a noisy background.
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, 1, 16, 16, generator=g)
    y = torch.zeros(1, 16, 16, dtype=torch.long)
    y[0, 4:12, 3:9] = 1
    y[0, 10:14, 10:15] = 2
    x[0, 0][y[0] == 1] += 1.0
    x[0, 0][y[0] == 2] -= 1.0
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    with torch.no_grad():
        first = loss_fn(net(x), y).item()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        logits = net(x)
    return first, loss_fn(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_tiny_unet_overfits_one_image(upsample):
    torch.manual_seed(0)
    net = UNet(1, 3, depth=2, width=8, norm="group", upsample=upsample)
    first, last, acc = _overfit(net)
    assert last < 0.2 * first
    assert acc > 0.97


def test_tiny_fcn_overfits_one_image():
    torch.manual_seed(0)
    net = FCN(1, 3, depth=2, width=8, norm="group")
    first, last, acc = _overfit(net, steps=80)
    assert last < 0.5 * first
    assert acc > 0.9


def test_registry_builds_by_name():
    assert set(MODELS) == {"unet", "fcn"}
    net = build_model("unet", 3, 4, depth=2, width=4, norm=None, upsample="bilinear")
    assert isinstance(net, UNet) and net.depth == 2 and net.width == 4
    assert net(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    assert isinstance(build_model("FCN", 1, 2, depth=1, width=2), FCN)


def test_registry_returns_module_as_is():
    net = nn.Conv2d(1, 2, 3, padding=1)
    assert build_model(net, 1, 2, depth=4, width=16) is net
    assert downsampling_factor(net, default=7) == 7
    assert downsampling_factor(UNet(1, 2, depth=3, width=2), default=7) == 8


def test_registry_calls_factory():
    calls = []

    def factory(in_channels, n_classes):
        calls.append((in_channels, n_classes))
        return nn.Conv2d(in_channels, n_classes, 1)

    net = build_model(factory, 3, 5, depth=2, width=4)
    assert calls == [(3, 5)]
    assert isinstance(net, nn.Conv2d) and net.out_channels == 5


@pytest.mark.parametrize("model, exc, match", [
    ("segnet", ValueError, r"model must be one of \['fcn', 'unet'\]"),
    (lambda i, k: "not a module", TypeError, "return a torch.nn.Module"),
    (3, TypeError, "model must be"),
    (None, TypeError, "model must be"),
])
def test_registry_model_errors(model, exc, match):
    with pytest.raises(exc, match=match):
        build_model(model, 1, 2, depth=2, width=4)


@pytest.mark.parametrize("depth, width, exc, match", [
    (0, 4, ValueError, "depth"),
    (2.0, 4, TypeError, "depth"),
    (2, 0, ValueError, "width"),
    (2, "8", TypeError, "width"),
])
def test_registry_depth_width_errors(depth, width, exc, match):
    with pytest.raises(exc, match=match):
        build_model("unet", 1, 2, depth=depth, width=width)


class _Declares(nn.Module):
    """A custom network declaring a given downsampling_factor."""

    def __init__(self, factor, in_channels=1, n_classes=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, n_classes, 3, padding=1)
        self.downsampling_factor = factor

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("factor, error", [("x", TypeError), (2.0, TypeError),
                                           (True, TypeError), (0, ValueError),
                                           (-2, ValueError)])
def test_invalid_downsampling_factor_is_named(factor, error):
    with pytest.raises(error, match=r"downsampling_factor of the model \(_Declares\)"):
        downsampling_factor(_Declares(factor))
    # through a fit: the same error, and the estimator is left as it was
    from sksegment import CNNSegmenter
    from sksegment.datasets import make_shapes

    X, y = make_shapes(n_samples=6, image_size=16, random_state=0)
    seg = CNNSegmenter(model=_Declares(factor, X.shape[-1] if X.ndim == 4 else 1),
                       width=4, depth=2, max_epochs=1, device="cpu")
    before = dict(seg.__dict__)
    with pytest.raises(error, match="downsampling_factor.*_Declares"):
        seg.fit(X, y)
    assert seg.__dict__.keys() == before.keys()


def test_valid_downsampling_factor_is_an_int():
    assert downsampling_factor(_Declares(np.int64(4))) == 4
    assert type(downsampling_factor(_Declares(np.int64(4)))) is int
    assert downsampling_factor(_Declares(1)) == 1
