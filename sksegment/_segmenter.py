"""CNNSegmenter: the scikit-learn face of sksegment.

It holds the parameters, checks them and the data, keeps the fitted
attributes, and hands the work to the pieces that do it: ``models`` builds the
network, ``losses`` the loss, ``_sampling`` draws batches, ``_training`` runs
the loop and ``_inference`` predicts.
"""

import copy
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _checkpoint, _distributed, _training
from ._data import (
    IGNORE,
    LabelCodec,
    check_ignore_index,
    check_images,
    check_masks,
    image_shape,
    n_channels,
    unique_labels,
)
from ._inference import _check_tile_size as check_tile_size
from ._inference import iter_predictions
from ._sampling import BatchSampler
from ._validation import (
    InstanceOf,
    Interval,
    IsCallable,
    IsSize,
    Options,
    check_size,
    validate_params,
)
from .augmentation import AugmentationChain, make_chain, unwrap
from .losses import compute_class_weight, get_loss
from .metrics import get_scorer
from .models import MODELS, build_model, downsampling_factor

_PATCH = [Options(None), IsSize()]

_PARAMETERS = {
    "model": [Options(*MODELS), InstanceOf(torch.nn.Module), IsCallable()],
    "depth": [Interval(int, 1, None)],
    "width": [Interval(int, 1, None)],
    "loss": [InstanceOf(str), InstanceOf(torch.nn.Module), IsCallable()],
    "loss_params": [Options(None), InstanceOf(dict)],
    "class_weight": [Options(None, "balanced"), InstanceOf(dict)],
    "ignore_index": [Options(None), Interval(int, None, None)],
    "optimizer": [Options("adam", "adamw", "sgd")],
    "learning_rate": [Interval(float, 0, None, closed="neither")],
    "weight_decay": [Interval(float, 0, None)],
    "batch_size": [Interval(int, 1, None)],
    "max_epochs": [Interval(int, 1, None)],
    "patch_size": _PATCH,
    "lr_schedule": [Options("constant", "cosine", "onecycle", "plateau")],
    "warmup_epochs": [Interval(int, 0, None)],
    "early_stopping": [Options(True, False)],
    "validation_fraction": [Interval(float, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(int, 1, None)],
    "tol": [Interval(float, 0, None)],
    "scoring": [InstanceOf(str), IsCallable()],
    "max_grad_norm": [Options(None), Interval(float, 0, None, closed="neither")],
    "precision": [Options("auto", "fp32", "bf16", "fp16")],
    "compile": [Options(True, False)],
    "foreground_oversampling": [Interval(float, 0, 1)],
    "tiling": [Options("auto", True, False)],
    "tile_size": _PATCH,
    "tile_overlap": [Interval(float, 0, 1, closed="left")],
    "tta": [Options(True, False)],
    "checkpoint_dir": [Options(None), InstanceOf(str, os.PathLike, label="a path")],
    "resume": [Options(True, False)],
    "warm_start": [Options(True, False)],
    "device": [InstanceOf(str, torch.device, label="a device string")],
    "distributed": [Options("auto", True, False)],
    "random_state": [Options(None), Interval(int, 0, 2**32 - 1),
                     InstanceOf(np.random.RandomState)],
    "verbose": [Interval(int, 0, None), Options(True, False)],
}


class CNNSegmenter(BaseEstimator):
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
        from ``depth`` and ``width``; a module is copied and trained; a
        callable ``(in_channels, n_classes) -> nn.Module`` builds a custom
        network. A custom network may set ``downsampling_factor``; inputs are
        padded to multiples of it (``2 ** depth`` when it does not).
    depth : int, default=4
        Downsampling steps of the built-in networks.
    width : int, default=16
        Filters at the first level (doubling at each level).
    loss : str, torch.nn.Module or callable, default="cross_entropy"
        A name from :func:`sksegment.losses.loss_names` ("cross_entropy",
        "mae", "dice", "jaccard", "focal", "tversky", "lovasz"), a weighted
        sum such as ``"0.7*dice+0.3*focal"``, a module or a callable
        ``(logits, target) -> scalar``.
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
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
    batch_size : int, default=8
        Images (or patches) per step.
    max_epochs : int, default=50
        Passes over the training images.
    patch_size : int, (int, int) or None, default=None
        Train on random crops of this size; None trains on whole images. An
        epoch then draws from each image as many patches as cover its area
        once (``round(H * W / (h * w))``, at least one).
    augment : augmenter, list of augmenters, Pipeline of augmenters or None, default=None
        Data augmentation from :mod:`sksegment.augmentation`, applied per
        batch on the device during training only, after any augmenters
        attached by earlier Pipeline steps.
    lr_schedule : {"constant", "cosine", "onecycle", "plateau"}, default="constant"
        Learning-rate schedule over ``max_epochs``; "plateau" halves the rate
        when the validation score (or the training loss) has not improved for
        ``n_iter_no_change // 2`` epochs.
    warmup_epochs : int, default=0
        Epochs of linear learning-rate warm-up.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the images (or use ``X_val`` and
        ``y_val`` given to ``fit``), stop when the validation score has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the
        best weights.
    validation_fraction : float, default=0.1
        Share of whole images held out for early stopping.
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    scoring : str or callable, default="mean_iou"
        What ``score`` returns and early stopping watches: a name from
        :func:`sksegment.metrics.get_scorer_names` or a callable
        ``(estimator, X, y) -> float``.
    max_grad_norm : float or None, default=None
        Clip the gradient norm to this value.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        "auto" trains with bf16 autocast on GPUs that support it (fp16 with a
        gradient scaler otherwise) and in fp32 on the CPU.
    compile : bool, default=False
        Use ``torch.compile``, falling back with a warning where it fails.
    foreground_oversampling : float, default=0.0
        With ``patch_size``, the share of patches centred on a pixel that is
        not background (``classes_[0]``).
    tiling : {"auto", True, False}, default="auto"
        Predict large images in overlapping tiles blended with a Gaussian
        window; "auto" tiles images above a size budget.
    tile_size : int, (int, int) or None, default=None
        Tile size for tiled prediction (None: 256, or ``patch_size`` where
        that is larger).
    tile_overlap : float, default=0.25
        Overlap of neighbouring tiles, in [0, 1).
    tta : bool, default=False
        Test-time augmentation: average predictions over flips (and 90-degree
        rotations of square inputs).
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
        on the CPU gives identical weights and predictions. A continued fit
        (``warm_start=True`` or ``partial_fit``) draws on from where the
        previous call stopped, so each call sees new batches.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar and one line per epoch.

    Attributes
    ----------
    classes_ : ndarray
        Sorted label values (``ignore_index`` excluded).
    n_classes_ : int
    n_channels_in_ : int
        Channels of the training images.
    input_dtype_ : numpy.dtype
        Dtype of the training images (it sets the intensity scaling).
    model_ : torch.nn.Module
        The trained network (in eval mode).
    device_ : torch.device
        Where it was trained.
    history_ : list of dict
        One entry per epoch: epoch, train_loss, lr, seconds, and val_score
        when there is validation data.
    loss_curve_ : list of float
        Training loss of each epoch.
    n_iter_ : int
        Epochs run.
    validation_scores_ : list of float
        Validation score of each epoch (empty without validation data).
    best_score_ : float or None
        Best validation score.
    best_epoch_ : int or None
        Epoch (1-based) of the best validation score.
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
    the call, fitted as before or not fitted. Ctrl-C is not a failure: the
    fit returns with the weights so far and ``interrupted_=True``.

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

    def __init__(self, model="unet", depth=4, width=16, loss="cross_entropy", loss_params=None,
                 class_weight=None, ignore_index=None, optimizer="adam", learning_rate=1e-3,
                 weight_decay=0.0, batch_size=8, max_epochs=50, patch_size=None, augment=None,
                 lr_schedule="constant", warmup_epochs=0, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, scoring="mean_iou",
                 max_grad_norm=None, precision="auto", compile=False,
                 foreground_oversampling=0.0, tiling="auto", tile_size=None, tile_overlap=0.25,
                 tta=False, checkpoint_dir=None, resume=False, warm_start=False, device="auto",
                 distributed="auto", random_state=None, verbose=0):
        self.model = model
        self.depth = depth
        self.width = width
        self.loss = loss
        self.loss_params = loss_params
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patch_size = patch_size
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
        validate_params(type(self).__name__, self.get_params(deep=False), _PARAMETERS)
        check_ignore_index(self.ignore_index)
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir: the folder whose checkpoint.pt "
                             "the fit continues from.")
        if isinstance(self.scoring, str):
            get_scorer(self.scoring)  # an unknown name fails here, not after training

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

    def _fit(self, X, y, X_val, y_val, n_epochs, incremental=False, classes=None):
        """Fit atomically: when anything but a KeyboardInterrupt (which keeps
        the weights so far) escapes, the estimator is put back as it was."""
        saved = dict(self.__dict__)
        run = {}
        try:
            self._run_fit(run, X, y, X_val, y_val, n_epochs, incremental, classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            # the network and optimizer state of the failed fit are garbage:
            # free their device memory now (the traceback keeps them alive)
            _training.discard(run.get("model"), run.get("trainer"))
            raise
        finally:
            _distributed.finish(run.get("dist"))  # DDP off; the group it created destroyed
            device = run.get("device")
            run.clear()
            _training.release_cuda_memory(device)
        return self

    def _run_fit(self, run, X, y, X_val, y_val, n_epochs, incremental, classes):
        # data parallel under torchrun (None otherwise); first, so that ranks given
        # different data or parameters all stop here rather than wait for each other
        dist = run["dist"] = _distributed.start(self.distributed, self.device, (X, y, X_val, y_val),
                                                self.get_params(deep=False))
        self._validate_params()
        images, chain = unwrap(X)
        images = check_images(images, "X")
        masks = check_masks(y, images, "y")
        ignore = check_ignore_index(self.ignore_index)
        continuing = (self.warm_start or incremental) and hasattr(self, "model_")
        if incremental and classes is not None and not hasattr(self, "classes_"):
            self._partial_classes = np.unique(np.asarray(classes))

        if continuing:
            self._check_continuation(images, masks, ignore)
        else:
            self._set_classes(images, masks, ignore, incremental)
        codec = LabelCodec(self.classes_, ignore)
        self._warn_large_patch(images)

        device = dist.device if dist is not None else _training.resolve_device(self.device)
        run["device"] = device
        _training.resolve_precision(self.precision, device)  # fail early on a bad combination
        checkpoint = (None if self.checkpoint_dir is None
                      else _checkpoint.check_checkpoint_dir(self.checkpoint_dir))
        # A continued fit draws on from where the last one stopped, so that
        # partial_fit calls and warm starts see new batches and augmentations.
        # It works on copies: the fitted state changes only when the fit ends.
        rng = copy.deepcopy(self._rng) if continuing and getattr(self, "_rng", None) is not None \
            else check_random_state(self.random_state)
        if dist is not None:  # one random stream on every rank, with random_state=None too
            dist.share_random_state(rng)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        fork_devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                        if device.type == "cuda" else [])
        with torch.random.fork_rng(devices=fork_devices):
            _training.seed_torch(seed, device)
            if continuing:
                model = copy.deepcopy(self.model_).to(device)
            else:
                model = self._build_model().to(device)
            run["model"] = model
            channels_last = device.type == "cuda"
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            pad_multiple = self._pad_multiple(model)
            _check_model_output(model, self.n_channels_in_, self.n_classes_, pad_multiple, device)
            check_tile_size(self.tile_size, (pad_multiple, pad_multiple))

            loss_fn = self._make_loss(masks, codec, device)

            # the segmenter's own augmenters (a standardiser among them is
            # fitted here, after the deterministic ops attached to X)
            self._augment_chain = make_chain(self.augment, X=X)
            full_chain = _join_chains(chain, self._augment_chain)
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            prepare = _training.BatchPreparer(codec, device, pad_multiple, full_chain, generator,
                                              channels_last)

            self.model_ = model  # validation during training predicts with it
            self.device_ = device
            train_idx, validate = self._validation_setup(images, masks, X_val, y_val, rng,
                                                         full_chain, model)
            sampler = BatchSampler(images, masks, self.batch_size, self.patch_size,
                                   self.foreground_oversampling, background=self.classes_[0],
                                   ignore_label=ignore)
            epochs = self.max_epochs if n_epochs is None else n_epochs
            trainer = _training.Trainer(
                model, loss_fn, device=device, optimizer=self.optimizer,
                learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                lr_schedule=self.lr_schedule, warmup_epochs=self.warmup_epochs,
                max_epochs=epochs, plateau_patience=max(1, self.n_iter_no_change // 2),
                precision=self.precision, compile=self.compile,
                max_grad_norm=self.max_grad_norm)
            run["trainer"] = trainer
            log = _training.TrainingLog()
            previous = getattr(self, "_train_state", None) if continuing else None
            if previous is not None:
                trainer.load_state_dict(copy.deepcopy(previous["trainer"]))
                log.load_state_dict(copy.deepcopy(previous["log"]))
                trainer.schedule.max_epochs = max(trainer.schedule.max_epochs,
                                                  len(log.history) + epochs)

            meta = {"classes": self.classes_.tolist(), "n_channels": int(self.n_channels_in_),
                    "network": type(model).__name__}
            if self.resume and checkpoint is not None and os.path.exists(checkpoint):
                epochs = _resume(checkpoint, meta, trainer, log, rng, epochs)

            if dist is not None:  # DDP for the steps, this rank's share of the batches
                sampler, validate = dist.prepare(trainer, sampler, validate, epochs,
                                                 len(log.history), self.compile)
            interrupted = _training.run_epochs(
                trainer, sampler, prepare, rng, log, n_epochs=epochs, train_indices=train_idx,
                validate=validate, early_stopping=self.early_stopping and validate is not None,
                n_iter_no_change=self.n_iter_no_change, tol=self.tol, generator=generator,
                checkpoint_path=checkpoint, checkpoint_meta=meta, verbose=self.verbose)

        self._store_log(log)
        log.best_state = None  # restored already; frees its memory
        # The optimizer state and history are kept (on the CPU, by value) only
        # where a later call continues from them; they travel with a pickle.
        keep = self.warm_start or incremental
        self._train_state = ({"trainer": _checkpoint.to_cpu(trainer.state_dict()),
                              "log": log.state_dict()} if keep else None)
        _training.discard(None, trainer)
        self.interrupted_ = interrupted
        self._rng = rng

    def _warn_large_patch(self, images):
        if self.patch_size is None:
            return
        patch = check_size(self.patch_size, "patch_size")
        largest = tuple(max(image_shape(images, i)[axis] for i in range(len(images)))
                        for axis in (0, 1))
        if patch[0] > largest[0] or patch[1] > largest[1]:
            warnings.warn(
                f"patch_size={self.patch_size!r} is larger than the largest training image "
                f"{largest} (height, width): along that axis each patch is the whole image. "
                "A batch of images of different sizes is padded, and padded pixels count in "
                "no loss.", UserWarning, stacklevel=4)

    def _labels(self, masks, ignore):
        labels = unique_labels(masks)
        return labels if ignore is None else labels[labels != ignore]

    def _check_continuation(self, images, masks, ignore):
        """warm_start / partial_fit: new data must fit the fitted model."""
        unseen = np.setdiff1d(self._labels(masks, ignore), self.classes_)
        if unseen.size:
            raise ValueError(f"y has labels {unseen.tolist()} that were not seen when the model "
                             f"was first fitted (classes_ = {self.classes_.tolist()}).")
        if n_channels(images) != self.n_channels_in_:
            raise ValueError(f"X has {n_channels(images)} channels but the model was fitted "
                             f"on {self.n_channels_in_}.")

    def _set_classes(self, images, masks, ignore, incremental):
        """Set classes_, n_classes_, n_channels_in_ and input_dtype_."""
        labels = self._labels(masks, ignore)
        if incremental and getattr(self, "_partial_classes", None) is not None:
            classes = self._partial_classes.astype(labels.dtype)
            if ignore is not None and ignore in classes:
                raise ValueError(f"ignore_index={ignore} is also one of classes "
                                 f"{classes.tolist()}; unlabelled pixels cannot be a class.")
            if np.setdiff1d(labels, classes).size:
                raise ValueError("y has labels that are not in classes: "
                                 f"{np.setdiff1d(labels, classes).tolist()}.")
            labels = classes
        if labels.size < 2:
            besides = "" if ignore is None else f" besides ignore_index={ignore}"
            found = ("no labelled pixel" if labels.size == 0
                     else f"a single class ({labels.tolist()})")
            raise ValueError(
                f"y has {found}{besides}; segmentation needs at least two label values "
                "(for example background and object)."
            )
        if ignore is not None and isinstance(self.class_weight, dict) and ignore in self.class_weight:
            raise ValueError(f"class_weight has the ignore_index label {ignore}.")
        self.classes_ = labels
        self.n_classes_ = len(labels)
        self.n_channels_in_ = n_channels(images)
        self.input_dtype_ = (images[0] if isinstance(images, list) else images).dtype

    def _make_loss(self, masks, codec, device):
        weights = None
        if self.class_weight is not None:
            counts = _training.count_pixels(masks, codec, self.n_classes_)
            weights = torch.as_tensor(
                compute_class_weight(self.class_weight, self.classes_, counts),
                dtype=torch.float32, device=device)
        # a loss module of the user's is copied, never moved or changed
        spec = copy.deepcopy(self.loss) if isinstance(self.loss, torch.nn.Module) else self.loss
        loss_fn = get_loss(spec, n_classes=self.n_classes_, loss_params=self.loss_params,
                           class_weight=weights, ignore_index=IGNORE)
        return loss_fn.to(device) if isinstance(loss_fn, torch.nn.Module) else loss_fn

    def _store_log(self, log):
        self.history_ = list(log.history)
        self.loss_curve_ = [h["train_loss"] for h in log.history]
        self.n_iter_ = len(log.history)
        self.validation_scores_ = list(log.validation_scores)
        self.best_score_ = None if log.best_epoch is None else log.best_score
        self.best_epoch_ = log.best_epoch

    def _build_model(self):
        if isinstance(self.model, torch.nn.Module):
            return copy.deepcopy(self.model)
        return build_model(self.model, self.n_channels_in_, self.n_classes_, self.depth,
                           self.width)

    def _pad_multiple(self, model):
        default = 2 ** self.depth if not isinstance(self.model, str) else 1
        return int(downsampling_factor(model, default))

    def _validation_setup(self, images, masks, X_val, y_val, rng, chain, model):
        """Training indices and a ``validate() -> score`` callable (or None)."""
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if X_val is not None:
            val_images, val_chain = unwrap(X_val)
            val_images = check_images(val_images, "X_val")
            val_masks = check_masks(y_val, val_images, "y_val")
            if n_channels(val_images) != self.n_channels_in_:
                raise ValueError(f"X_val has {n_channels(val_images)} channels; X has "
                                 f"{self.n_channels_in_}.")
            return None, self._make_validate(val_images, val_masks, _join_chains(val_chain, chain))
        if not self.early_stopping:
            return None, None
        n = len(images)
        n_val = round(self.validation_fraction * n)
        if n_val < 1 or n_val >= n:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} leaves "
                f"{n_val} of {n} images for validation; give more images, change "
                "validation_fraction, or pass X_val and y_val."
            )
        order = rng.permutation(n)
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        val_images = _take(images, val_idx)
        val_masks = _take(masks, val_idx)
        return train_idx, self._make_validate(val_images, val_masks, chain)

    def _make_validate(self, images, masks, chain):
        scorer = self._get_scorer()
        view = _ValidationView(self, images, chain)
        return lambda: scorer(view, images, masks)

    def _get_scorer(self):
        return get_scorer(self.scoring) if isinstance(self.scoring, str) else self.scoring

    # ------------------------------------------------------------------ #
    # prediction
    # ------------------------------------------------------------------ #
    def _check_predict_input(self, X):
        check_is_fitted(self, "model_")
        images, chain = unwrap(X)
        images = check_images(images, "X")
        if n_channels(images) != self.n_channels_in_:
            raise ValueError(
                f"X has {n_channels(images)} channel(s) but the segmenter was fitted on "
                f"{self.n_channels_in_}."
            )
        return images, _join_chains(chain, self._augment_chain)

    def _predict_images(self, images, chain, output, verbose=None):
        """Predictions for checked images: an iterator of one array per image
        (class indices for ``output="labels"``)."""
        model = self.model_
        model.eval()
        device = next(model.parameters()).device if any(True for _ in model.parameters()) \
            else torch.device("cpu")

        def transform(x):
            return chain(x, None, training=False)[0]

        tile_size = self.tile_size
        if tile_size is None and self.patch_size is not None:
            # a fully convolutional net predicts larger tiles than its patches
            # well, and fewer tiles cost less
            tile_size = tuple(max(p, 256) for p in np.broadcast_to(self.patch_size, 2).tolist())
        return iter_predictions(
            model, images, device=device, output=output, batch_size=self.batch_size,
            pad_multiple=self._pad_multiple(model), transform=transform if len(chain) else None,
            tiling=self.tiling, tile_size=tile_size, tile_overlap=self.tile_overlap,
            tta=self.tta, verbose=self.verbose if verbose is None else verbose)

    def predict(self, X):
        """Label images for ``X``.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), or list of images
            Sizes may differ from those seen in fit.

        Returns
        -------
        y_pred : ndarray of shape (n, H, W), or list of (H, W) arrays
            In the label values and dtype of the ``y`` given to fit; a list
            when the images differ in size.
        """
        images, chain = self._check_predict_input(X)
        return _collect(self._predict_images(images, chain, "labels"), images, self.classes_)

    def predict_proba(self, X):
        """Per-pixel class probabilities for ``X``.

        Parameters
        ----------
        X : ndarray of shape (n, H, W) or (n, H, W, C), or list of images

        Returns
        -------
        proba : ndarray of shape (n, H, W, n_classes_) float32, or list
            Probabilities of ``classes_``, summing to 1 on the last axis.
        """
        images, chain = self._check_predict_input(X)
        return _collect(self._predict_images(images, chain, "proba"), images)

    def score(self, X, y):
        """Mean IoU over ``classes_`` (or the figure named by ``scoring``).

        A class absent from both the truth and the prediction is left out of
        the mean; pixels labelled ``ignore_index`` are not counted.

        Parameters
        ----------
        X : ndarray or list of images
        y : ndarray of shape (n, H, W) or list of label images

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "model_")
        return float(self._get_scorer()(self, X, y))

    def export(self, path, format="torch.export"):
        """Save the fitted network for deployment without sksegment.

        Parameters
        ----------
        path : str or path
            File to write. A JSON file ``<path>.json`` beside it records the
            preprocessing the network expects and the label values.
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
        The network takes float32 ``(N, C, H, W)``: multiply the raw image by
        ``input_scale`` from the JSON file (1/255 for uint8 training images),
        move channels first, and pad H and W up to multiples of
        ``pad_multiple``. Crop its logits back and take
        ``classes[logits.argmax(1)]``. Deterministic preprocessing steps of a
        Pipeline (such as an intensity standardiser) must be applied first.
        """
        from ._data import intensity_scale
        from ._export import export_network

        check_is_fitted(self, "model_")
        return export_network(
            self.model_, path, format=format, n_channels=self.n_channels_in_,
            pad_multiple=self._pad_multiple(self.model_),
            metadata={"classes": self.classes_.tolist(),
                      "input_scale": intensity_scale(self.input_dtype_)})

    # ------------------------------------------------------------------ #
    # pickling: a model fitted on CUDA loads on a CPU-only machine
    # ------------------------------------------------------------------ #
    def __getstate__(self):
        # a copy: pickling never changes the live estimator
        state = dict(super().__getstate__())
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
            target = _load_device(device)
            if target.type != "cpu":
                self.model_ = model.to(target)


class _ValidationView:
    """What a scorer needs of the segmenter while it is still training."""

    def __init__(self, seg, images, chain):
        self._seg, self._images, self._chain = seg, images, chain
        self.classes_ = seg.classes_
        self.ignore_index = seg.ignore_index

    def predict(self, X):
        # silent: the epoch's own progress line reports the score
        return _collect(self._seg._predict_images(self._images, self._chain, "labels",
                                                  verbose=0),
                        self._images, self.classes_)


def _versions():
    """Versions of the libraries a pickle is written with."""
    import sklearn

    from . import __version__

    return {"sksegment": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}


def _load_device(device):
    """Where an unpickled network goes: the device it was fitted on when this
    machine has it; else cuda:0 (with a warning) for a missing GPU index; else
    the CPU (a model fitted on CUDA predicts on a machine without one)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return torch.device("cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        warnings.warn(f"This segmenter was fitted on {device}, which this machine does not "
                      f"have ({torch.cuda.device_count()} CUDA device(s)); its network is "
                      "placed on cuda:0.", UserWarning, stacklevel=3)
        return torch.device("cuda", 0)
    return device


def _resume(path, meta, trainer, log, rng, epochs):
    """Load the checkpoint at ``path`` into the live objects; returns the
    epochs left to run."""
    state = _checkpoint.read_checkpoint(path, meta)
    _checkpoint.load_into(path, "network and optimizer",
                          lambda: trainer.load_state_dict(state["trainer"]))
    _checkpoint.load_into(path, "training log", lambda: log.load_state_dict(state["log"]))
    _checkpoint.load_into(path, "random state",
                          lambda: _checkpoint.set_rng_state(rng, state["rng"]))
    return max(0, epochs - len(log.history))


def _check_model_output(model, n_channels_in, n_classes, pad_multiple, device):
    """One small forward pass before training: the network must map
    (N, C, H, W) to logits (N, n_classes, H, W)."""
    side = pad_multiple * max(1, -(-32 // pad_multiple))
    x = torch.zeros(2, n_channels_in, side, side, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ValueError(f"The model failed on a test input of shape {tuple(x.shape)} "
                         f"(N, C, H, W): {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"The model must return logits of shape (N, K, H, W); for an input of "
                         f"shape {tuple(x.shape)} it returned {got}.")
    if out.shape[1] != n_classes:
        raise ValueError(f"The model gives {out.shape[1]} output channel(s), but y has "
                         f"{n_classes} classes: the network must output one logit channel "
                         "per class (for a factory model, use its n_classes argument).")
    if tuple(out.shape[2:]) != (side, side) or out.shape[0] != 2:
        raise ValueError(f"The model must keep N, H and W: for an input of shape "
                         f"{tuple(x.shape)} it returned {tuple(out.shape)}.")


def _join_chains(first, second):
    ops = tuple(first.ops if first is not None else ()) + tuple(
        second.ops if second is not None else ())
    return AugmentationChain(ops)


def _take(data, idx):
    if isinstance(data, list):
        return [data[i] for i in idx]
    return data[idx]


def _collect(predictions, images, classes=None):
    """Gather per-image predictions (mapped through ``classes`` when given):
    into one preallocated array for an array input, or when a list's images
    all share one shape; else into a list."""
    if isinstance(images, np.ndarray):
        out = None
        for i, p in enumerate(predictions):
            if out is None:
                dtype = p.dtype if classes is None else classes.dtype
                out = np.empty((len(images),) + p.shape, dtype=dtype)
            out[i] = p if classes is None else classes[p]
        return out
    preds = [p if classes is None else classes[p] for p in predictions]
    if len({p.shape for p in preds}) == 1:
        return np.stack(preds)
    return preds
