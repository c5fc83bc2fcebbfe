"""Building a segmentation network from a name, a module or a factory."""

from torch import nn

from .._validation import check_int, did_you_mean, is_int
from ._fcn import FCN
from ._unet import UNet

#: Networks that ``build_model`` knows by name.
MODELS = {"unet": UNet, "fcn": FCN}


def build_model(model, in_channels, n_classes, depth, width, **kwargs):
    """Build the network a segmenter trains.

    Parameters
    ----------
    model : str, torch.nn.Module or callable
        A name from :data:`MODELS` ("unet", "fcn"; case-insensitive), built as
        ``MODELS[model](in_channels, n_classes, depth=depth, width=width,
        **kwargs)``; an ``nn.Module`` instance, returned as is (not copied;
        ``depth``, ``width`` and ``kwargs`` are then unused); or a callable,
        called as ``model(in_channels, n_classes, **kwargs)``, that returns an
        ``nn.Module``.
    in_channels : int
        Number of input channels.
    n_classes : int
        Number of classes (output channels).
    depth : int
        Number of downsampling steps (>= 1) for the named networks.
    width : int
        Channels of the first level (>= 1) for the named networks.
    **kwargs
        Further keyword arguments of the network (``norm``, ``activation``,
        ``dropout``, ...).

    Returns
    -------
    module : torch.nn.Module

    Raises
    ------
    ValueError
        Unknown model name, or a bad ``depth`` / ``width`` value.
    TypeError
        ``model`` of another type, or a callable that does not return an
        ``nn.Module``.

    Examples
    --------
    >>> from sksegment.models import build_model
    >>> net = build_model("unet", in_channels=1, n_classes=2, depth=2, width=4)
    >>> type(net).__name__, net.downsampling_factor
    ('UNet', 4)
    >>> build_model(net, 1, 2, depth=2, width=4) is net
    True
    """
    depth = check_int(depth, "depth", low=1)
    width = check_int(width, "width", low=1)
    if isinstance(model, str):
        key = model.lower()
        if key not in MODELS:
            hint = did_you_mean(model, MODELS)
            raise ValueError(
                f"model must be one of {sorted(MODELS)}, an nn.Module or a callable "
                f"(in_channels, n_classes) -> nn.Module; got {model!r}"
                + (f"; {hint}" if hint else ".")
            )
        return MODELS[key](in_channels, n_classes, depth=depth, width=width, **kwargs)
    if isinstance(model, nn.Module):
        return model
    if callable(model):
        module = model(in_channels, n_classes, **kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"model is a callable, so it must return a torch.nn.Module when called as "
                f"model(in_channels, n_classes); it returned {type(module).__name__}."
            )
        return module
    raise TypeError(
        f"model must be a string from {sorted(MODELS)}, a torch.nn.Module or a callable "
        f"(in_channels, n_classes) -> nn.Module; got {type(model).__name__}."
    )


def downsampling_factor(module, default=1):
    """The ``downsampling_factor`` a network declares, or ``default``.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    default : int, default=1
        Value used when the network has no ``downsampling_factor`` attribute.

    Returns
    -------
    factor : int or default
        The network's ``downsampling_factor`` (a positive int), or ``default``
        when it has none.

    Raises
    ------
    TypeError
        The network (an ``nn.Module``) declares a ``downsampling_factor`` that
        is not an int (a bool is not one).
    ValueError
        The network declares a ``downsampling_factor`` < 1.

    Examples
    --------
    >>> from torch import nn
    >>> from sksegment.models import UNet
    >>> from sksegment.models._registry import downsampling_factor
    >>> downsampling_factor(UNet(1, 2, depth=3, width=2))
    8
    >>> downsampling_factor(nn.Conv2d(1, 2, 3, padding=1), default=1)
    1
    """
    factor = getattr(module, "downsampling_factor", None)
    if factor is None:
        return default
    if not isinstance(module, nn.Module):
        # a factory (a class or function), not the network: its attribute is
        # not the network's; the network it builds is checked instead
        return factor if is_int(factor) and factor >= 1 else default
    what = (f"the downsampling_factor of the model ({type(module).__name__}) must be an "
            f"integer >= 1 (H and W of its input are multiples of it)")
    if not is_int(factor):
        raise TypeError(f"{what}; got {factor!r} ({type(factor).__name__}). Set it to a "
                        f"positive int, or remove the attribute if any size will do.")
    if factor < 1:
        raise ValueError(f"{what}; got {factor!r}. Set it to a positive int, or remove "
                         f"the attribute if any size will do.")
    return int(factor)
