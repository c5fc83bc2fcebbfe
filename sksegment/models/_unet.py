"""U-Net: an encoder/decoder with skip connections (Ronneberger et al., 2015)."""

import torch
from torch import nn

from .._validation import check_int, check_number, check_option

NORMS = ("batch", "instance", "group", None)
ACTIVATIONS = ("relu", "leaky_relu", "gelu")
UPSAMPLES = ("transpose", "bilinear")


def check_architecture(in_channels, n_classes, depth, width, norm, activation):
    """The arguments UNet and FCN share, checked; returns the four ints."""
    check_option(norm, "norm", NORMS)
    check_option(activation, "activation", ACTIVATIONS)
    return (check_int(in_channels, "in_channels", low=1), check_int(n_classes, "n_classes", low=1),
            check_int(depth, "depth", low=1), check_int(width, "width", low=1))


def _group_count(channels, max_groups=8):
    """Largest number of groups <= max_groups that divides ``channels``."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def make_norm(norm, channels):
    """Normalisation layer for ``channels`` feature maps (identity for None)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "group":
        return nn.GroupNorm(_group_count(channels), channels)
    return nn.Identity()


def make_activation(activation):
    """Activation module by name."""
    if activation == "relu":
        return nn.ReLU(inplace=True)
    if activation == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    return nn.GELU()


def conv_block(in_channels, out_channels, norm, activation, dropout=0.0):
    """Two 3x3 convolutions (padding 1), each followed by norm and activation.

    The convolutions carry no bias when a norm layer follows them. Dropout
    (channel-wise), when positive, sits between the two convolutions.
    """
    bias = norm is None
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
        make_norm(norm, out_channels),
        make_activation(activation),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    layers += [
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
        make_norm(norm, out_channels),
        make_activation(activation),
    ]
    return nn.Sequential(*layers)


def kaiming_init(module, activation, classifier=None):
    """He (Kaiming) normal initialisation of every convolution in ``module``.

    Biases start at zero; norm layers keep their identity initialisation. The
    ``classifier`` convolution (the logits layer, followed by no activation)
    gets the linear gain instead.
    """
    nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if m is classifier:
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            elif nonlinearity == "leaky_relu":
                nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_input(x, in_channels, factor, model_name):
    """Raise a clear error when ``x`` is not ``(N, in_channels, H, W)`` with H
    and W multiples of ``factor``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model_name} expects a torch.Tensor of shape (N, C, H, W); "
                        f"got {type(x).__name__}.")
    if x.ndim != 4:
        raise ValueError(
            f"{model_name} expects a 4-D input (N, C, H, W); got shape {tuple(x.shape)}."
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{model_name} was built for in_channels={in_channels} but the input has "
            f"{x.shape[1]} channels (shape {tuple(x.shape)})."
        )
    h, w = x.shape[2], x.shape[3]
    if h % factor or w % factor:
        raise ValueError(
            f"{model_name} needs height and width that are multiples of its "
            f"downsampling_factor {factor}; got H={h}, W={w}. Pad the input (for example "
            f"to H={-(-h // factor) * factor}, W={-(-w // factor) * factor})."
        )


class _Up(nn.Module):
    """Decoder step: upsample by 2, concatenate the skip, two 3x3 convs."""

    def __init__(self, in_channels, out_channels, norm, activation, dropout, upsample):
        super().__init__()
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )
        self.conv = conv_block(2 * out_channels, out_channels, norm, activation, dropout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net for semantic segmentation: maps images to per-pixel class logits.

    The encoder applies, at each of ``depth + 1`` levels, two 3x3 convolutions
    (each followed by the norm layer and the activation) and then a 2x2 max
    pooling (except at the deepest level, the bottleneck). Level ``l`` has
    ``width * 2**l`` channels. The decoder upsamples by 2, concatenates the
    encoder features of the same level (the skip connection) and applies two
    3x3 convolutions. A final 1x1 convolution gives ``n_classes`` logits.

    Parameters
    ----------
    in_channels : int
        Number of input channels (1 for grayscale, 3 for RGB).
    n_classes : int
        Number of output channels (class logits).
    depth : int, default=4
        Number of 2x2 downsampling steps; H and W of the input must be
        multiples of ``2**depth``.
    width : int, default=16
        Channels at the first level; level ``l`` has ``width * 2**l``.
    norm : {"batch", "instance", "group"} or None, default="batch"
        Normalisation after each 3x3 convolution ("group" uses up to 8 groups
        that divide the channel count). None applies no normalisation and gives
        the convolutions a bias.
    activation : {"relu", "leaky_relu", "gelu"}, default="relu"
        Activation after each normalisation.
    dropout : float, default=0.0
        Probability of channel dropout (``nn.Dropout2d``) between the two
        convolutions of the bottleneck and of every decoder block; in [0, 1).
    upsample : {"transpose", "bilinear"}, default="transpose"
        Decoder upsampling: a learned 2x2 transposed convolution with stride 2,
        or bilinear interpolation followed by a 1x1 convolution.

    Attributes
    ----------
    downsampling_factor : int
        ``2**depth``; forward requires H and W to be multiples of it.

    Examples
    --------
    >>> import torch
    >>> from sksegment.models import UNet
    >>> net = UNet(in_channels=1, n_classes=3, depth=2, width=4)
    >>> net.downsampling_factor
    4
    >>> net(torch.zeros(2, 1, 16, 12)).shape
    torch.Size([2, 3, 16, 12])
    """

    def __init__(self, in_channels, n_classes, depth=4, width=16, norm="batch",
                 activation="relu", dropout=0.0, upsample="transpose"):
        super().__init__()
        in_channels, n_classes, depth, width = check_architecture(
            in_channels, n_classes, depth, width, norm, activation)
        check_option(upsample, "upsample", UPSAMPLES)
        dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        self.width = width
        self.downsampling_factor = 2 ** depth

        channels = [width * 2 ** level for level in range(depth + 1)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for level, ch in enumerate(channels):
            drop = dropout if level == depth else 0.0
            self.encoder.append(conv_block(previous, ch, norm, activation, drop))
            previous = ch
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.decoder = nn.ModuleList(
            _Up(channels[level + 1], channels[level], norm, activation, dropout, upsample)
            for level in reversed(range(depth))
        )
        self.classifier = nn.Conv2d(channels[0], n_classes, kernel_size=1)
        kaiming_init(self, activation, classifier=self.classifier)

    def forward(self, x):
        """Per-pixel logits ``(N, n_classes, H, W)`` for images ``(N, C, H, W)``."""
        check_input(x, self.in_channels, self.downsampling_factor, "UNet")
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level < self.depth:
                skips.append(x)
                x = self.pool(x)
        for up, skip in zip(self.decoder, reversed(skips)):
            x = up(x, skip)
        return self.classifier(x)

