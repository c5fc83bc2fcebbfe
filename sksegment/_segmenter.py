"""CNNSegmenter: the scikit-learn face of sksegment.

This module holds the parameters, their table and documentation, and the
public methods. The fitting steps (``_fitting.FitMixin``) and the prediction
plumbing (``_predicting.PredictMixin``) live beside it; they hand the work to
the pieces that do it: ``_planning`` chooses from the data, ``models`` builds
the network, ``losses`` the loss, ``_sampling`` draws batches, ``_training``
runs the loop and ``_inference`` predicts.
"""

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import _training
from ._arrays import is_dask, is_dask_images
from ._data import check_ignore_index
from ._fitting import FitMixin
from ._metric_scorers import check_score
from ._outputs import collect
from ._parameters import PARAMETERS
from ._predicting import PredictMixin
from ._validation import check_option, validate_params
from .augmentation import check_augment, unwrap
from .losses import get_loss
from .metrics import get_scorer


class CNNSegmenter(FitMixin, PredictMixin, BaseEstimator):
    """Semantic segmentation with a convolutional network, as a scikit-learn estimator.

    ``fit(X, y)`` trains a PyTorch network (a U-Net by default) on images and
    label masks, on the GPU when there is one and on the CPU otherwise.
    ``predict`` returns label images in the values and dtype of ``y``;
    ``predict_proba`` per-pixel class probabilities; ``score`` the mean
    intersection over union (IoU).

    Images are NumPy arrays, channels last as in scikit-image: ``(n, H, W)``
    for grayscale or ``(n, H, W, C)``, any real dtype (uint8 is scaled by
    1/255, uint16 by 1/65535, bool to 0/1, floats and other integers are used
    as given). They stay in their dtype: each batch is converted on the
    device, so no float copy of the data set is ever made. H and W need not
    be multiples of the network's downsampling factor: images are padded
    inside and the output cropped back. A list of images of different sizes
    is accepted everywhere.

    Parameters
    ----------
    model : {"unet", "fcn"}, torch.nn.Module or callable, default="unet"
        The network. A string builds one of :data:`sksegment.models.MODELS`
        from ``depth``, ``width`` and ``norm``; a module is copied and trained;
        a callable ``(in_channels, n_classes) -> nn.Module`` builds a custom
        network. A custom network may set ``downsampling_factor``; inputs are
        padded to multiples of it (``2 ** depth_`` when it does not).
    depth : "auto" or int, default="auto"
        Downsampling steps of the built-in networks. "auto" downsamples while
        the bottleneck keeps at least 4 pixels of the training patch and the
        widest level at most 512 feature maps (nnU-Net's rules); see
        ``depth_``. A custom network (``model=`` a module) fixes its own
        depth: "auto" then takes the depth its ``downsampling_factor``
        declares (``UNet(depth=2)`` declares 4, so ``depth_`` is 2), and for
        a network that declares none, ``depth_`` only sets the padding
        multiple ``2 ** depth_`` and the patch rounding.
    width : int, default=16
        Filters at the first level (doubling at each level).
    norm : {"auto", "batch", "instance", "group"} or None, default="auto"
        Normalisation layers of the built-in networks. "auto" uses batch
        norm for batches of 8 or more and instance norm for smaller ones,
        where batch statistics are noisy. A custom network brings its own;
        only "auto" is accepted with one.
    loss : str, torch.nn.Module or callable, default="dice+cross_entropy"
        A name from :func:`sksegment.losses.loss_names` ("cross_entropy",
        "mae", "dice", "jaccard", "focal", "tversky", "lovasz"), a weighted
        sum such as ``"0.7*dice+0.3*focal"``, a module (copied, never changed)
        or a callable ``(logits, target) -> scalar``. The default is
        nnU-Net's: Dice for the overlap of each class, cross entropy for
        every pixel (measured in ``benchmarks/README.md``).
    loss_params : dict or None, default=None
        Options of the loss, for example ``{"gamma": 2}`` for focal.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the losses that can weight classes, as in
        scikit-learn: "balanced" weighs classes by inverse pixel frequency.
    ignore_index : int or None, default=None
        A label value in ``y`` that means "unlabelled": those pixels count in
        no loss, no metric and no class.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        SGD uses Nesterov momentum 0.9.
    learning_rate : float, default=3e-3
        The base learning rate (> 0, finite), which ``lr_schedule`` scales
        (the peak of the default one-cycle schedule).
    weight_decay : float, default=0.0
        L2 penalty of the optimizer (>= 0, finite); decoupled for "adamw".
    batch_size : "auto" or int, default="auto"
        Images (or patches) per step. "auto" fills the device's step budget
        with patches, covers at most 5 % of the training pixels per step and
        takes at least 2 (nnU-Net's rules); see ``batch_size_``.
    max_epochs : "auto" or int, default="auto"
        Passes over the training images. "auto" is 50, or as many as
        ``max_time`` allows when it is set.
    max_time : float or None, default=None
        Training budget in seconds: train until it is spent (checked after
        every step), with the learning-rate schedule laid over the budget
        (a one-cycle or cosine schedule reaches its end when the time runs
        out), then keep the weights of the last step (or the best on
        validation with ``early_stopping``). With an explicit ``max_epochs``
        training stops at whichever comes first. The budget counts from the
        start of ``fit``: the scans of the data before training (labels,
        class counts, the fingerprint) and validation count in it; the last
        validation runs after it.
    patch_size : "auto", int, (int, int) or None, default="auto"
        Train on random crops of this size; None trains on whole images.
        "auto" takes the median image, shrunk until a step of the smallest
        batch fits the device's budget (nnU-Net's rule), or whole images when
        the largest fits; see ``patch_size_``. An epoch draws from each image
        as many patches as cover its area once (``round(H * W / (h * w))``,
        at least one). A patch larger than an image takes the whole image
        along that axis (a warning says so); a batch of different sizes is
        padded and padded pixels count in no loss.
    normalize : {"auto", "zscore", "minmax", "imagenet"} or None, default="auto"
        Intensity normalisation on the device, after augmentation and before
        the network, with statistics of the training set stored in
        ``normalization_`` and applied at predict too. "zscore" (and "auto",
        as nnU-Net does for images other than CT) subtracts each channel's
        mean and divides by its standard deviation; "minmax" maps each
        channel's 0.5 and 99.5 percentiles to 0 and 1; "imagenet" uses the
        ImageNet statistics of RGB images in [0, 1]; None feeds the network
        the scaled images as they are (uint8 / 255, ...).
    augment : "auto", augmenter, list of augmenters, Pipeline of augmenters or None, default="auto"
        Data augmentation from :mod:`sksegment.augmentation`, applied per
        batch on the device during training only, after any augmenters
        attached by earlier Pipeline steps. "auto" flips images of 3
        channels (photographs, which have an up and a down) left to right and
        any other image along both axes with quarter turns, and, in fits of
        20 epochs or more, gives each image a 30 % chance of a small rotation
        and scaling, of a change of brightness (a shift of up to 0.15
        standard deviations of the training intensities) and contrast
        (+-15 %) and of a gamma change (a milder form of nnU-Net's
        augmentation). Under ``max_time`` the first epoch's time tells how
        many epochs fit: the first epoch trains with the flips alone, and
        the changes join from the second when the budget holds 20 epochs.
        They regularise over many epochs and slow fitting before that
        (measured: on RGB shapes of 256 x 256, 0.596 mean IoU with the flips
        alone against 0.564 with the changes after 15 epochs; on smaller
        shapes 0.876 with the changes against 0.861 after 28). "auto" adds nothing when earlier Pipeline steps
        attached random augmenters; see ``augment_``. None adds none.
    lr_schedule : {"constant", "cosine", "onecycle", "plateau"}, default="onecycle"
        Learning-rate schedule over ``max_epochs`` (or ``max_time``):
        "onecycle" rises to ``learning_rate`` over the first 30 % and falls
        to almost 0 at the end, "cosine" falls to 1 % of it; "plateau" halves
        the rate when the validation score (or the training loss) has not
        improved for more than ``max(1, n_iter_no_change // 2)`` epochs in a
        row (torch's ``ReduceLROnPlateau`` with that patience). ``partial_fit``, which
        does not know the length of the run, trains at ``learning_rate``
        (halving it on a plateau with "plateau").
    warmup_epochs : int, default=0
        Epochs of linear learning-rate warm-up.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the images (or use ``X_val`` and
        ``y_val`` given to ``fit``), stop when the validation score has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the
        best weights (those of the highest score, whatever ``tol``).
    validation_fraction : float, default=0.1
        Share of whole images held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without an improvement of the validation score by more than
        ``tol`` after which ``early_stopping`` stops (>= 1).
    tol : float, default=1e-4
        Smallest rise of the validation score that counts as an improvement
        for ``early_stopping`` (>= 0, finite).
    scoring : str or callable, default="mean_iou"
        What ``score`` returns and early stopping watches: a name from
        :func:`sksegment.metrics.get_scorer_names` or a callable
        ``(estimator, X, y) -> float``.
    max_grad_norm : float or None, default=None
        Clip the gradient norm to this value.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        "auto" trains with bf16 autocast where the device computes in bf16
        natively: GPUs that support it (fp16 with a gradient scaler on
        others) and CPUs with AVX512-BF16 or AMX instructions (there 1.4x
        more training steps per second within a time budget and 2x faster
        prediction, measured on an AMD EPYC); fp32 on other CPUs. See
        ``precision_``.
    compile : bool, default=False
        Use ``torch.compile``, falling back with a warning where it fails.
    foreground_oversampling : float, default=0.0
        With patches, the share of patches centred on a pixel that is not
        background (``classes_[0]``): of a class drawn uniformly among the
        foreground classes of the image, then a pixel of it, as in nnU-Net
        (which oversamples a third of its patches), so that rare classes are
        centred as often as common ones.
    postprocess : None, "auto" or dict, default=None
        Post-processing of the predicted label images by connected
        components (:mod:`sksegment.postprocessing`), applied by ``predict``
        (not ``predict_proba``). "auto" tries each step on the validation
        data (``X_val`` or the ``early_stopping`` split, which it needs) and
        keeps those that raise the mean Dice and make no class worse, as
        nnU-Net does; a dict gives the steps explicitly, for example
        ``{"remove_small": 64, "fill_holes": True}``. See
        ``postprocessing_``.
    tiling : {"auto", True, False}, default="auto"
        Predict large images in overlapping tiles blended with a Gaussian
        window; "auto" tiles images above a size budget.
    tile_size : int, (int, int) or None, default=None
        Tile size for tiled prediction (None: 256, or the training patch
        where that is larger).
    tile_overlap : float, default=0.25
        Overlap of neighbouring tiles, in [0, 1).
    tta : {"auto", True, False}, default="auto"
        Test-time augmentation: average the predictions over mirrored (and
        turned) copies of the input. True uses the flips and, for square
        inputs, the quarter turns (8 views; 4 for other inputs); "auto" uses
        the views the default augmentation trained the network to expect, as
        nnU-Net predicts with the mirrorings it trained with (left-right
        mirroring for images of 3 channels, all 8 or 4 views for others; see
        ``tta_``), and none when ``augment`` was set or a Pipeline attached
        augmenters. Prediction costs as many forward passes as there are
        views (set ``tta=False`` for the fastest prediction); validation
        during fit predicts without them, and exported networks do not
        include them. Measured with the defaults on 2 CPU cores: on the
        membrane slices the 8 views raised mean IoU by 0.004 (0.792 to
        0.796 after 180 s of training, 0.796 to 0.799 after 600 s), at 8x
        the prediction time; on RGB shapes (4 classes, 256 x 256) mirroring
        raised it by 0.000 to 0.009 over four trainings.
    checkpoint_dir : str, path or None, default=None
        Save the training state there after every epoch (atomically).
    resume : bool, default=False
        Continue from the checkpoint in ``checkpoint_dir`` when one exists.
    warm_start : bool, default=False
        Continue from the current weights on the next call to ``fit``.
    device : str, default="auto"
        "auto" (CUDA when available, else CPU) or a torch device string.
    distributed : {"auto", True, False}, default="auto"
        Data-parallel training on several processes, for a script started as
        ``torchrun --nproc_per_node=N script.py`` in which every process calls
        ``fit`` with the same data and parameters. "auto" trains data-parallel
        when it finds a torch.distributed environment of more than one
        process (``WORLD_SIZE`` > 1 with ``RANK``, ``MASTER_ADDR`` and
        ``MASTER_PORT``, or a process group already initialised); True
        requires one; False always trains in this process alone. Each process
        (rank) uses ``cuda:LOCAL_RANK`` (with ``device="auto"`` or "cuda") or
        the CPU, takes its own share of every epoch's batches, so
        ``batch_size`` is per rank and the global batch is ``batch_size``
        times the number of ranks, and ends with the same fitted estimator.
        Batch norm is synchronised across ranks on CUDA only. The
        environment variable ``SKSEGMENT_DIST_TIMEOUT`` sets how many seconds
        to wait for the other ranks.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, batch order, patches and augmentation. The same seed
        on the CPU gives identical weights and predictions (without
        ``max_time``, whose stopping point depends on the machine's speed).
        A continued fit (``warm_start=True`` or ``partial_fit``) draws on
        from where the previous call stopped, so each call sees new batches.
    verbose : int, default=0
        0 is silent; 1 prints the data-driven choices, and shows a progress
        bar and one line per epoch while training (``predict`` and
        ``score`` stay silent); 2 also shows progress bars of prediction.

    Attributes
    ----------
    classes_ : ndarray
        Sorted label values (``ignore_index`` excluded).
    n_classes_ : int
    n_channels_in_ : int
        Channels of the training images.
    input_dtype_ : numpy.dtype
        Dtype of the training images (it sets the intensity scaling).
    fingerprint_ : dict
        What the data-driven choices were made from: image sizes (median,
        smallest, largest), channels, dtype, per-channel intensity statistics
        (after the dtype scaling), class pixel frequencies and the device.
    patch_size_ : (int, int) or None
        The training patch (None: whole images).
    batch_size_ : int
    depth_ : int
        Downsampling steps of the built-in network (for a custom network,
        ``2 ** depth_`` is the padding multiple unless it declares
        ``downsampling_factor``).
    norm_ : str or None
        Normalisation layers of the built-in network.
    normalization_ : dict or None
        ``{"kind", "shift", "scale"}``: inputs are ``(x - shift) / scale``
        per channel after the dtype scaling.
    postprocessing_ : sksegment.postprocessing.PostProcessor or None
        What ``predict`` applies to the label images.
    augment_ : list of augmenters, or as given
        ``augment`` resolved: with "auto", the augmenters the last epoch
        trained with (None when a Pipeline attached augmenters); otherwise
        ``augment`` itself.
    tta_ : bool or "horizontal"
        The test-time augmentation ``tta="auto"`` resolved to.
    model_ : torch.nn.Module
        The trained network (in eval mode).
    device_ : torch.device
        Where it was trained.
    precision_ : {"fp32", "bf16", "fp16"}
        The precision the fit trained at (``precision`` resolved on
        ``device_``). Prediction runs at ``precision`` resolved on the
        device it predicts on.
    history_ : list of dict
        One entry per epoch: epoch, train_loss, lr, seconds, time (training
        seconds so far), val_score when there is validation data, and steps
        and n_batches for an epoch that ``max_time`` cut short.
    loss_curve_ : list of float
        Training loss of each epoch.
    n_iter_ : int
        Epochs run.
    validation_scores_ : list of float
        Validation score of each epoch (empty without validation data).
    best_score_ : float or None
        Best validation score (of the last fit: a warm start is a run of its
        own, which keeps its own best weights with ``early_stopping``).
    best_epoch_ : int or None
        Epoch (1-based, counted over every fit) of the best validation score.
    interrupted_ : bool
        Whether the last fit was stopped by Ctrl-C (KeyboardInterrupt). It
        then keeps the best weights on the validation data so far with
        ``early_stopping``, else the weights of the last complete epoch.

    See Also
    --------
    sksegment.augmentation : augmenters for Pipelines and ``augment``.
    sksegment.metrics : IoU, Dice and boundary scores, and scorers.

    Notes
    -----
    ``score`` is the mean IoU over ``classes_``; a class absent from both the
    truth and the prediction is left out of the mean (neither 1 nor 0), so
    scores stay on one scale across cross-validation folds.

    A fit is atomic: when it raises (a diverging loss, a bad checkpoint, an
    error in a custom loss), the estimator is left exactly as it was before
    the call, fitted as before or not fitted, and a ``RandomState`` given as
    ``random_state`` gets its draws back. Ctrl-C is not a failure: the fit
    returns with ``interrupted_=True`` and the state of its last complete
    epoch (weights, optimizer, random draws).

    Pickling (``joblib.dump``, ``copy.deepcopy``) never changes the
    estimator. A pickle holds the network on the CPU and the library
    versions it was written with; with ``warm_start=True`` or after
    ``partial_fit`` it also holds the optimizer state, the learning-rate
    schedule, the random state and the history, so a copy loaded tomorrow
    continues training exactly where the original would have (``n_iter_``
    and ``history_`` go on counting). Without them, a later warm start
    begins a new history from the fitted weights.

    With ``checkpoint_dir`` the training state is written after every
    epoch, atomically, as plain tensors and numbers that
    ``torch.load(..., weights_only=True)`` reads; ``resume=True`` continues
    from it on any device. A checkpoint that does not fit the run (damaged,
    another network, other classes or channels) raises
    ``sksegment.CheckpointError`` naming the file.

    Examples
    --------
    >>> from sksegment import CNNSegmenter
    >>> from sksegment.datasets import make_shapes
    >>> X, y = make_shapes(n_samples=12, image_size=32, random_state=0)
    >>> seg = CNNSegmenter(depth=2, width=4, max_epochs=2, random_state=0)
    >>> seg.fit(X[:8], y[:8]).predict(X[8:]).shape
    (4, 32, 32)
    >>> seg.predict_proba(X[8:]).shape
    (4, 32, 32, 3)
    >>> 0.0 <= seg.score(X[8:], y[8:]) <= 1.0
    True
    """

    def __init__(self, model="unet", depth="auto", width=16, norm="auto",
                 loss="dice+cross_entropy", loss_params=None, class_weight=None,
                 ignore_index=None, optimizer="adam", learning_rate=3e-3, weight_decay=0.0,
                 batch_size="auto", max_epochs="auto", max_time=None, patch_size="auto",
                 normalize="auto", augment="auto", lr_schedule="onecycle", warmup_epochs=0,
                 early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, scoring="mean_iou",
                 max_grad_norm=None, precision="auto", compile=False,
                 foreground_oversampling=0.0, postprocess=None, tiling="auto", tile_size=None,
                 tile_overlap=0.25, tta="auto", checkpoint_dir=None, resume=False,
                 warm_start=False, device="auto", distributed="auto", random_state=None,
                 verbose=0):
        self.model = model
        self.depth = depth
        self.width = width
        self.norm = norm
        self.loss = loss
        self.loss_params = loss_params
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_time = max_time
        self.patch_size = patch_size
        self.normalize = normalize
        self.augment = augment
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.scoring = scoring
        self.max_grad_norm = max_grad_norm
        self.precision = precision
        self.compile = compile
        self.foreground_oversampling = foreground_oversampling
        self.postprocess = postprocess
        self.tiling = tiling
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.tta = tta
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.warm_start = warm_start
        self.device = device
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ #
    # scikit-learn plumbing
    # ------------------------------------------------------------------ #
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    def _validate_params(self):
        validate_params(type(self).__name__, self.get_params(deep=False), PARAMETERS)
        check_ignore_index(self.ignore_index)
        if self.norm != "auto" and not isinstance(self.model, str):
            raise ValueError(f"norm={self.norm!r} applies to the built-in networks only; a "
                             "custom model brings its own normalisation layers: leave "
                             "norm='auto'.")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir: the folder whose checkpoint.pt "
                             "the fit continues from.")
        if isinstance(self.scoring, str):
            get_scorer(self.scoring)  # an unknown name fails here, not after training
        # before the data are read: the loss spelling and its loss_params, the
        # augmenters' parameters, the device
        if isinstance(self.loss, str):
            get_loss(self.loss, n_classes=2, loss_params=self.loss_params)
        check_augment(self.augment)
        _training.resolve_device(self.device)

    # ------------------------------------------------------------------ #
    # fitting
    # ------------------------------------------------------------------ #
    def fit(self, X, y, X_val=None, y_val=None):
        """Train the network on images ``X`` and label images ``y``.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), or list of images
            Training images, channels last, in any real dtype. May carry
            augmenters attached by earlier Pipeline steps.
        y : ndarray of shape (n, H, W), or list of label images
            Integer or bool label images, any label values.
        X_val, y_val : same as X and y, default=None
            Validation data: scored every epoch (``validation_scores_``) and
            used by ``early_stopping`` instead of a held-out fraction.

        Returns
        -------
        self : CNNSegmenter
        """
        return self._fit(X, y, X_val, y_val, n_epochs=None)

    def partial_fit(self, X, y, classes=None):
        """Train for one epoch, starting from the current weights.

        Parameters
        ----------
        X, y : as in :meth:`fit`
        classes : array-like or None
            All label values the model will ever see. Required on the first
            call when ``y`` may not show every class.

        Returns
        -------
        self : CNNSegmenter
        """
        return self._fit(X, y, None, None, n_epochs=1, incremental=True, classes=classes)

    # ------------------------------------------------------------------ #
    # prediction
    # ------------------------------------------------------------------ #
    def predict(self, X, out=None):
        """Label images for ``X``.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), array-like that reads
            on demand, or list of images
            Sizes may differ from those seen in fit. A ``numpy.memmap``, a
            zarr array or an h5py dataset is read one batch of images, or one
            tile, at a time. A dask array gives a dask array back (below).
        out : array-like of shape (n, H, W), list of arrays, or None, default=None
            Where to write the labels (an ndarray, a memmap, a zarr array, an
            h5py dataset: anything with ``shape``, ``dtype`` and slice
            assignment). Tiled images are written band by band as their rows
            are finished, so a prediction larger than memory goes straight to
            disk. Its dtype must hold every value of ``classes_`` exactly. For
            images of different sizes, pass a list with one ``(H, W)`` array
            per image. Checked before any prediction work: a wrong shape or
            dtype, or a read-only or closed store, raises at once.

        Returns
        -------
        y_pred : ndarray of shape (n, H, W), list of (H, W) arrays, dask array, or out
            In the label values and dtype of the ``y`` given to fit; a list
            when the images differ in size; ``out`` itself when given. For a
            dask array ``X`` (and ``out=None``), a lazy dask array of shape
            (n, H, W): one image per chunk along the first axis, the chunks
            of ``X`` along rows and columns (chunks smaller than a tile merged
            with a neighbour; an image predicted whole is one chunk). Each
            block is computed with an overlap of one tile into its
            neighbours, so its interior gets the same tiles, blended in the
            same order, as the in-memory prediction: computed, its
            probabilities equal the in-memory ones to about 1e-5 (float32
            rounding of differently composed batches of tiles), and so do its
            labels except where two classes tie within that rounding. A
            block holding NaN or infinity raises ValueError when computed.
        """
        images, chain = self._check_predict_input(X, out, "labels")
        post = getattr(self, "postprocessing_", None)
        if out is None and is_dask_images(images):
            from ._dask import postprocess_dask, predict_dask

            labels = predict_dask(self._predict_images(images, chain, "labels", compiled=False),
                                  images.store,
                                  self.classes_, self.n_classes_)
            return labels if post is None else postprocess_dask(labels, post, self.classes_)
        return self._predict_labels(images, chain, out=out)

    def predict_proba(self, X, out=None):
        """Per-pixel class probabilities for ``X``.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), array-like that reads
            on demand, or list of images
            As in :meth:`predict`; a dask array gives a dask array back.
        out : array-like of shape (n, H, W, n_classes_), list of arrays, or None, default=None
            Where to write the probabilities, as in :meth:`predict`. Its dtype
            must be a float dtype: float32 keeps them as computed, float16
            halves the size (rounded to about 3 significant digits, so rows
            may sum to 1 only within about 1e-3).

        Returns
        -------
        proba : ndarray of shape (n, H, W, n_classes_) float32, list, dask array, or out
            Probabilities of ``classes_``, summing to 1 on the last axis;
            ``out`` itself when given; for a dask array ``X``, a lazy dask
            array of shape (n, H, W, n_classes_) chunked as in :meth:`predict`
            (the last axis in one chunk).
        """
        images, chain = self._check_predict_input(X, out, "proba")
        if out is None and is_dask_images(images):
            from ._dask import predict_dask

            return predict_dask(self._predict_images(images, chain, "proba", compiled=False),
                                images.store,
                                self.classes_, self.n_classes_)
        return collect(self._predict_images(images, chain, "proba"), images, out=out)

    def predict_uncertainty(self, X, method="entropy", out=None):
        """Per-pixel uncertainty of the prediction, in [0, 1].

        Parameters
        ----------
        X : as in :meth:`predict`
            A dask array is predicted in memory here.
        method : {"entropy", "tta"}, default="entropy"
            "entropy": the predictive entropy of the class probabilities
            (of their average over test-time augmentation when ``tta=True``),
            divided by ``log(n_classes_)``: 0 where one class has all the
            probability, 1 where every class is equally likely. "tta": the
            disagreement of the test-time-augmented views (those of ``tta``,
            "auto" resolved in ``tta_``: for RGB images the left-right mirror;
            otherwise, and when test-time augmentation is off, flips and, for
            square inputs, quarter turns): the entropy of their mean
            probabilities minus the mean of their entropies (the mutual
            information between the prediction and the view), divided by
            ``log(n_classes_)``; 0 where every view predicts the same
            probabilities.
        out : array-like of shape (n, H, W), list of arrays, or None, default=None
            Where to write the maps (a float dtype), as in :meth:`predict`.

        Returns
        -------
        uncertainty : ndarray of shape (n, H, W) float32, list of (H, W) arrays, or out
            Computed with the tiling, batching and memory bounds of
            :meth:`predict`: tiled images are blended tile by tile and written
            band by band.

        Examples
        --------
        >>> from sksegment import CNNSegmenter
        >>> from sksegment.datasets import make_shapes
        >>> X, y = make_shapes(n_samples=8, image_size=32, random_state=0)
        >>> seg = CNNSegmenter(width=4, max_epochs=2, random_state=0).fit(X, y)
        >>> u = seg.predict_uncertainty(X[:2])
        >>> u.shape, u.dtype, bool(((u >= 0) & (u <= 1)).all())
        ((2, 32, 32), dtype('float32'), True)
        >>> seg.predict_uncertainty(X[:2], method="tta").shape
        (2, 32, 32)
        """
        check_option(method, "method", ("entropy", "tta"))
        images, chain = self._check_predict_input(X, out, "uncertainty")
        k = self.n_classes_
        scale = 1.0 / np.log(k) if k > 1 else 0.0

        def entropy(p):
            return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)

        def uncertainty(block):
            if method == "entropy":
                u = entropy(block)
            else:  # the K mean probabilities, then the mean entropy of the views
                u = np.maximum(entropy(block[..., :k]) - block[..., k], 0.0)
            return np.clip(u * scale, 0.0, 1.0).astype(np.float32)

        if method == "tta":
            predictions = self._predict_images(images, chain, "views", tta=self._tta() or True)
        else:
            predictions = self._predict_images(images, chain, "proba")
        return collect(predictions, images, out=out, transform=uncertainty)

    def score(self, X, y):
        """Mean IoU over ``classes_`` (or the figure named by ``scoring``).

        A class absent from both the truth and the prediction is left out of
        the mean; pixels labelled ``ignore_index`` are not counted.

        Parameters
        ----------
        X : ndarray, array-like that reads on demand, or list of images
            A dask array is predicted in memory here (not as a dask array).
        y : ndarray of shape (n, H, W), array-like, or list of label images
            An array-like is read one image at a time.

        Returns
        -------
        score : float

        Notes
        -----
        The predicted label images are held in memory while they are scored;
        for data larger than memory, predict into a store with ``out=`` and
        score it in parts with :mod:`sksegment.metrics`.
        """
        check_is_fitted(self, "model_")
        self._warn_unseen_labels(y)
        estimator = self
        if is_dask(unwrap(X)[0]):
            from ._dask import EagerView

            estimator = EagerView(self)
        return check_score(self._get_scorer()(estimator, X, y))


    def export(self, path, format="torch.export"):
        """Save the fitted network for deployment without sksegment.

        Parameters
        ----------
        path : str or path
            File to write (its folder must exist; an existing file is
            replaced, as ``torch.save`` does). A JSON file ``<path>.json``
            beside it records the preprocessing the network expects and the
            label values. Both are written under temporary names and moved
            into place once complete: a failed export leaves earlier files
            as they were.
        format : {"torch.export", "torchscript", "onnx"}, default="torch.export"
            ``torch.export`` writes an ExportedProgram with dynamic batch and
            image size (load it with ``torch.export.load(path).module()``);
            ``torchscript`` a traced module (``torch.jit.load``); ``onnx`` an
            ONNX graph with dynamic batch and image size, input ``"image"``,
            output ``"logits"`` (needs the onnx and onnxscript packages:
            ``pip install "sksegment[onnx]"``).

        Returns
        -------
        path : str

        Notes
        -----
        The network takes float32 ``(N, C, H, W)``. The JSON file says how to
        get there: multiply the raw image by ``input_scale``, apply
        deterministic steps of a Pipeline (an intensity standardiser, say),
        then ``preprocessing`` (steps ``{"kind": "standardize", "mean",
        "scale"}``: ``(x - mean[c]) / scale[c]``) and ``normalization``
        (``(x - shift[c]) / scale[c]``), move channels first, and pad H and W at the
        bottom and right to multiples of ``pad_multiple`` as ``padding``
        says (mirrored; the border pixel repeated where the padding is not
        smaller than the image), W by one more multiple where the padded
        image would hold fewer than ``min_cells`` (2) multiples, so that
        an image of one pad_multiple square or less keeps two pixels at the
        bottleneck. Crop the logits back and take
        ``classes[logits.argmax(1)]``. TorchScript and ONNX files alike
        compute in float32 and hold one forward pass: they match
        ``predict_proba`` with ``precision="fp32"`` and ``tta=False``.
        """
        from ._data import intensity_scale
        from ._export import export_network, preprocessing_steps

        check_is_fitted(self, "model_")
        return export_network(
            self.model_, path, format=format, n_channels=self.n_channels_in_,
            pad_multiple=self._pad_multiple(self.model_),
            metadata={"classes": self.classes_.tolist(),
                      "input_scale": intensity_scale(self.input_dtype_),
                      "preprocessing": preprocessing_steps(self._augment_chain),
                      "normalization": self.normalization_})

    # ------------------------------------------------------------------ #
    # pickling: a model fitted on CUDA loads on a CPU-only machine
    # ------------------------------------------------------------------ #
    def __getstate__(self):
        # a copy: pickling never changes the live estimator
        state = dict(super().__getstate__())
        state.pop("_compiled_predict", None)  # compiled code does not pickle
        model = state.get("model_")
        if model is not None and any(t.device.type != "cpu" for t in model.state_dict().values()):
            state["model_"] = copy.deepcopy(model).cpu()
        state["_saved_versions"] = _versions()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        model = getattr(self, "model_", None)
        device = getattr(self, "device_", None)
        if model is not None and device is not None:
            target = _training.unpickled_device(device)
            if target.type != "cpu":
                self.model_ = model.to(target)


def _versions():
    """Versions of the libraries a pickle is written with."""
    import sklearn

    from . import __version__

    return {"sksegment": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}
