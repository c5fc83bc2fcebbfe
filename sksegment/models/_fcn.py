"""A small fully convolutional network (Long, Shelhamer and Darrell, 2015)."""

from torch import nn
from torch.nn import functional as F

from .._validation import check_int
from ._unet import check_architecture, check_input, conv_block, kaiming_init


class FCN(nn.Module):
    """Fully convolutional network: a pooled encoder, a per-pixel classifier,
    bilinear upsampling back to the input size.

    ``depth`` blocks each apply two 3x3 convolutions (each followed by the norm
    layer and the activation) and a 2x2 max pooling; block ``i`` has
    ``width * 2**i`` channels. A 1x1 convolution scores the coarsest features
    (stride ``2**depth``). In the FCN-8s manner, the scores are then refined
    ``skips`` times: upsampled by 2 and added to the 1x1-convolution scores of
    the next finer pooled features. Finally the scores are bilinearly
    upsampled to the input size.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    n_classes : int
        Number of output channels (class logits).
    depth : int, default=3
        Number of conv/pool blocks; H and W of the input must be multiples of
        ``2**depth``.
    width : int, default=16
        Channels of the first block; block ``i`` has ``width * 2**i``.
    norm : {"batch", "instance", "group"} or None, default="batch"
        Normalisation after each 3x3 convolution.
    activation : {"relu", "leaky_relu", "gelu"}, default="relu"
        Activation after each normalisation.
    skips : int or None, default=None
        Number of finer levels whose scores are fused in, between 0 (a plain
        FCN-32s-like network) and ``depth - 1``. None means
        ``min(2, depth - 1)`` (FCN-8s style). The skip score layers start at
        zero, so before training the coarse scores alone decide the output.

    Attributes
    ----------
    downsampling_factor : int
        ``2**depth``; forward requires H and W to be multiples of it.

    Examples
    --------
    >>> import torch
    >>> from sksegment.models import FCN
    >>> net = FCN(in_channels=3, n_classes=2, depth=2, width=4)
    >>> net.downsampling_factor
    4
    >>> net(torch.zeros(1, 3, 8, 12)).shape
    torch.Size([1, 2, 8, 12])
    """

    def __init__(self, in_channels, n_classes, depth=3, width=16, norm="batch",
                 activation="relu", skips=None):
        super().__init__()
        in_channels, n_classes, depth, width = check_architecture(
            in_channels, n_classes, depth, width, norm, activation)
        skips = min(2, depth - 1) if skips is None else check_int(
            skips, f"skips (with depth={depth})", low=0, high=depth - 1)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        self.width = width
        self.skips = skips
        self.downsampling_factor = 2 ** depth

        channels = [width * 2 ** i for i in range(depth)]
        self.blocks = nn.ModuleList()
        previous = in_channels
        for ch in channels:
            self.blocks.append(conv_block(previous, ch, norm, activation))
            previous = ch
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.classifier = nn.Conv2d(channels[-1], n_classes, kernel_size=1)
        # Score layers for the pooled outputs of blocks depth-2, depth-3, ...
        self.skip_scores = nn.ModuleList(
            nn.Conv2d(channels[depth - 2 - k], n_classes, kernel_size=1)
            for k in range(self.skips)
        )
        kaiming_init(self, activation, classifier=self.classifier)
        for conv in self.skip_scores:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        """Per-pixel logits ``(N, n_classes, H, W)`` for images ``(N, C, H, W)``."""
        check_input(x, self.in_channels, self.downsampling_factor, "FCN")
        size = x.shape[2:]
        pooled = []
        for block in self.blocks:
            x = self.pool(block(x))
            pooled.append(x)
        scores = self.classifier(x)
        for k, score in enumerate(self.skip_scores):
            finer = pooled[self.depth - 2 - k]
            scores = F.interpolate(scores, size=finer.shape[2:], mode="bilinear",
                                   align_corners=False) + score(finer)
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
