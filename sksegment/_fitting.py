"""The steps of ``CNNSegmenter.fit``: checks of the data, the data-driven
choices, the network, loss and batches, the training run, and what is kept
afterwards. A mixin of :class:`sksegment.CNNSegmenter`; the work itself is
done by ``_planning``, ``_training``, ``_sampling`` and ``postprocessing``.
"""

import copy
import math
import os
import sys
import warnings

import joblib
import numpy as np
import torch
from sklearn.utils import check_random_state

from . import _checkpoint, _distributed, _planning, _training
from ._arrays import take as _take
from ._data import (
    IGNORE,
    LabelCodec,
    check_classes,
    check_ignore_index,
    check_images,
    check_masks,
    count_pixels,
    image_shape,
    label_dtype,
    n_channels,
    unique_labels,
)
from ._forward import too_deep
from ._inference import check_tile_size
from ._normalization import intensity_statistics, make_normalization
from ._outputs import collect
from ._predicting import _join_chains
from ._sampling import BatchSampler
from .augmentation import make_chain, unwrap
from .losses import compute_class_weight, get_loss
from .models import build_model, downsampling_factor

#: Parameters that shape the fitted network or its optimizer state: a
#: continued fit (warm_start, partial_fit) refuses a change of them.
_DESIGN = ("model", "width", "depth", "norm", "normalize", "optimizer")


class FitMixin:
    """Fitting, for :class:`sksegment.CNNSegmenter`."""

    def _fit(self, X, y, X_val, y_val, n_epochs, incremental=False, classes=None):
        """Fit atomically: when anything but a KeyboardInterrupt (which keeps
        the weights so far) escapes, the estimator is put back as it was."""
        saved = dict(self.__dict__)
        # a RandomState given as random_state is the user's: its draws are
        # taken back too (a successful fit uses them up, as in scikit-learn)
        user_rng = self.random_state if isinstance(self.random_state,
                                                   np.random.RandomState) else None
        rng_saved = None if user_rng is None else user_rng.get_state()
        run = {}
        completed = False
        try:
            self._run_fit(run, X, y, X_val, y_val, n_epochs, incremental, classes)
            completed = True
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if user_rng is not None:
                user_rng.set_state(rng_saved)
            # the network and optimizer state of the failed fit are garbage:
            # free their device memory now (the traceback keeps them alive)
            _training.discard(run.get("model"), run.get("trainer"))
            raise
        finally:
            # DDP off; the group it created destroyed
            _distributed.finish(run.get("dist"), completed)
            device = run.get("device")
            run.clear()
            _training.release_cuda_memory(device)
        return self

    def _run_fit(self, run, X, y, X_val, y_val, n_epochs, incremental, classes):
        fit_start = _training._clock()  # max_time counts the scans and the plan too
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
        if incremental and classes is not None:
            given = check_classes(classes, label_dtype(masks))
            if not hasattr(self, "classes_"):
                self._partial_classes = given
            elif not np.array_equal(given, self.classes_):
                raise ValueError(f"classes={given.tolist()} differs from the classes of the "
                                 f"first partial_fit call, {self.classes_.tolist()}; pass the "
                                 "same classes (or none) on later calls.")

        if continuing:
            self._check_continuation(images, masks, ignore)
        else:
            self._set_classes(images, masks, ignore, incremental)
        codec = LabelCodec(self.classes_, ignore)

        device = dist.device if dist is not None else _training.resolve_device(self.device)
        run["device"] = device
        # fails early on a bad combination; the fit's precision is kept
        self.precision_ = _training.precision_name(self.precision, device)
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
            # the segmenter's own augmenters (a standardiser among them is
            # fitted here, after the deterministic ops attached to X)
            augment = self.augment
            default_augment = (augment == "auto"  # unless a Pipeline attached augmenters
                               and len(chain) == len(chain.deterministic()))
            if augment == "auto":
                augment = None  # the default augmenters follow the plan (below)
                if not continuing:
                    self.tta_ = _planning.tta_for(self.n_channels_in_, default_augment)
            elif not continuing:
                self.tta_ = False
            fitted = getattr(self, "_augment_chain", None) if continuing else None
            if fitted is not None and len(fitted.deterministic()):
                # a standardiser fitted on the first fit's data: the network learnt
                # on its output, so a continued fit keeps it (and its augment)
                if joblib.hash(augment) != joblib.hash(self.augment_):  # by value
                    raise ValueError(
                        "augment differs from the fitted segmenter's, whose deterministic "
                        "steps (a standardiser) the network was trained on; warm_start and "
                        "partial_fit keep them. Set augment back, or fit a new network "
                        "(warm_start=False, or sklearn.base.clone).")
            else:
                # a copy: set_params(augment__...) after fit changes the
                # parameter, not the record of what trained
                self.augment_ = copy.deepcopy(augment)
                self._augment_chain = make_chain(augment, X=X)
            full_chain = _join_chains(chain, self._augment_chain)
            counts = count_pixels(masks, codec, self.n_classes_)
            if not continuing:
                reasons = self._plan(images, counts, full_chain.deterministic(), device, dist)
                self._design = {k: getattr(self, k) for k in _DESIGN}
                if self.verbose:
                    self._print_plan(reasons)
            else:
                self._continue_plan()
            if default_augment:  # no deterministic op: the plan saw the same chain
                spread = _planning.intensity_spread(getattr(self, "fingerprint_", None))
                self.augment_ = _planning.default_augmenters(self.n_channels_in_, spread=spread)
                self._augment_chain = make_chain(self.augment_, X=X)
                full_chain = _join_chains(chain, self._augment_chain)
            self._warn_large_patch(images)

            model = (copy.deepcopy(self.model_) if continuing else self._build_model()).to(device)
            run["model"] = model
            channels_last = device.type == "cuda"
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            pad_multiple = self._pad_multiple(model)
            _training.check_model_output(model, self.n_channels_in_, self.n_classes_,
                                         pad_multiple, device)
            check_tile_size(self.tile_size, (pad_multiple, pad_multiple))
            loss_fn = self._make_loss(counts, device)

            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            prepare = _training.BatchPreparer(codec, device, pad_multiple, full_chain, generator,
                                              channels_last, self._normalizer())

            self.model_ = model  # validation during training predicts with it
            self.device_ = device
            train_idx, validate = self._validation_setup(images, masks, X_val, y_val, rng,
                                                         full_chain, model)
            explicit_post = self._explicit_postprocessing()  # checked before training
            if self.postprocess == "auto" and validate is None:
                raise ValueError("postprocess='auto' chooses its steps on validation data: "
                                 "pass X_val and y_val to fit, set early_stopping=True (it holds "
                                 "out validation_fraction of the images), or give the steps "
                                 "as a dict.")
            sampler = BatchSampler(images, masks, self.batch_size_, self.patch_size_,
                                   self.foreground_oversampling, background=self.classes_[0],
                                   ignore_label=ignore)
            epochs = n_epochs if n_epochs is not None else (
                self.max_epochs if self.max_epochs != "auto"
                else _planning.MAX_EPOCHS if self.max_time is None else _planning.UNBOUNDED)
            schedule_epochs = (epochs if self.max_epochs != "auto" or self.max_time is None
                               else math.inf)
            trainer = _training.Trainer(
                model, loss_fn, device=device, optimizer=self.optimizer,
                learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                # a schedule over epochs needs the whole run: partial_fit trains at
                # learning_rate (or halves it on a plateau)
                lr_schedule=("constant" if incremental and self.lr_schedule != "plateau"
                             else self.lr_schedule), warmup_epochs=self.warmup_epochs,
                max_epochs=schedule_epochs, max_time=self.max_time,
                plateau_patience=max(1, self.n_iter_no_change // 2),
                precision=self.precision, compile=self.compile,
                max_grad_norm=self.max_grad_norm)
            run["trainer"] = trainer
            log = _training.TrainingLog()
            previous = getattr(self, "_train_state", None) if continuing else None
            if previous is not None:
                trainer.load_state_dict(copy.deepcopy(previous["trainer"]))
                log.load_state_dict(copy.deepcopy(previous["log"]))
                if not incremental:  # a warm start is a run of its own: its own best weights
                    log.best_score, log.best_epoch, log.best_state = -math.inf, None, None
                    log.no_improvement = 0
                trainer.schedule.max_epochs = max(trainer.schedule.max_epochs,
                                                  len(log.history) + schedule_epochs)
                trainer.schedule.max_time = self.max_time
            # epochs of earlier fits (a warm start) are not this fit's pace;
            # those a resumed checkpoint restores are
            before_epoch = (self._augment_by_budget(chain, prepare, X, epochs, len(log.history))
                            if default_augment and not incremental else None)

            meta = {"classes": self.classes_.tolist(), "n_channels": int(self.n_channels_in_),
                    "network": type(model).__name__,
                    "optimizer": _checkpoint.optimizer_meta(trainer.optimizer)}
            time_offset = _training._clock() - fit_start
            if self.resume and checkpoint is not None and os.path.exists(checkpoint):
                epochs = _checkpoint.resume(checkpoint, meta, trainer, log, rng, epochs)
                time_offset += log.train_time

            if dist is not None:  # DDP for the steps, this rank's share of the batches
                sampler, validate = dist.prepare(trainer, sampler, validate, epochs,
                                                 len(log.history), self.compile)
            interrupted = _training.run_epochs(
                trainer, sampler, prepare, rng, log, n_epochs=epochs, train_indices=train_idx,
                validate=validate, early_stopping=self.early_stopping and validate is not None,
                n_iter_no_change=self.n_iter_no_change, tol=self.tol, generator=generator,
                checkpoint_path=checkpoint, checkpoint_meta=meta, verbose=self.verbose,
                max_time=self.max_time, time_offset=time_offset, before_epoch=before_epoch)

        self._store_log(log)
        log.best_state = None  # restored already; frees its memory
        # The optimizer state and history are kept (on the CPU, by value) only
        # where a later call continues from them; they travel with a pickle.
        keep = self.warm_start or incremental
        self._train_state = ({"trainer": _checkpoint.to_cpu(trainer.state_dict()),
                              "log": log.state_dict()} if keep else None)
        _training.discard(None, trainer)
        self.postprocessing_ = (self._choose_postprocessing(validate)
                                if self.postprocess == "auto" else explicit_post)
        if self.postprocess != "auto":  # a report of an earlier fit's choice
            self.__dict__.pop("postprocessing_report_", None)
        self.interrupted_ = interrupted
        self._rng = rng

    def _plan(self, images, counts, deterministic_chain, device, dist=None):
        """The data-driven choices: fingerprint_, patch_size_, batch_size_,
        depth_, norm_ and normalization_. Data-parallel ranks plan for the
        smallest of their GPUs, so that they all make the same choices."""
        transform = ((lambda x: deterministic_chain(x, None, training=False)[0])
                     if len(deterministic_chain) else None)
        stats = intensity_statistics(images, transform, device)
        self.fingerprint_ = dict(_planning.data_fingerprint(images, counts, self.classes_, stats),
                                 device=_planning.device_fingerprint(device, dist))
        choice = _planning.plan(self.fingerprint_, self.fingerprint_["device"],
                                patch_size=self.patch_size, depth=self._declared_depth(),
                                batch_size=self.batch_size, width=self.width,
                                n_classes=self.n_classes_)
        self.patch_size_ = choice["patch_size"]
        self.batch_size_ = choice["batch_size"]
        self.depth_ = choice["depth"]
        self.norm_ = (_planning.norm_for(self.batch_size_) if self.norm == "auto"
                      else self.norm)
        kind = "zscore" if self.normalize == "auto" else self.normalize
        self.normalization_ = (None if kind is None
                               else make_normalization(kind, stats, self.n_channels_in_))
        if kind is None:
            _warn_unscaled(stats)
        self._check_depth_fits()
        return choice["reasons"]

    def _check_depth_fits(self):
        """A built-in network of depth ``depth_`` must not be deeper than its
        training inputs (the patches, or the median image) are large: it would
        learn from padding. Smaller images are padded (``_forward.MIN_CELLS``)."""
        if not isinstance(self.model, str):
            return
        median = tuple(int(v) for v in self.fingerprint_["shape_median"])
        # patches are cropped from the images: none is larger than its image
        size = (median if self.patch_size_ is None
                else tuple(min(p, m) for p, m in zip(self.patch_size_, median)))
        problem = too_deep(*size, 2 ** self.depth_)
        if problem:
            what = (f"patch_size_ {tuple(self.patch_size_)}" if size != median
                    else f"the median training image ({size[0]} x {size[1]})")
            deepest = next((d for d in range(self.depth_ - 1, 0, -1)
                            if not too_deep(*size, 2 ** d)), None)
            give = (f"Give depth={deepest} or less" if deepest
                    else "Give larger images or fewer downsamplings")
            bigger = ", or a larger patch_size" if size != median else ""
            raise ValueError(f"X: depth={self.depth_} is too deep for {what}: {problem}. "
                             f"{give}{bigger}.")

    def _augment_by_budget(self, chain, prepare, X, epochs, first):
        """``augment="auto"`` follows the budget: before each epoch, the
        preparer gets the flips alone or the flips with the affine and
        intensity changes (:func:`sksegment._planning.augment_extras`), from
        ``epochs`` and, under ``max_time``, the seconds of this fit's first
        epoch, ``history[first]`` (rank 0's in a data-parallel fit, so that
        every process makes the same choice)."""
        flips = _planning.default_augmenters(self.n_channels_in_, extras=False)
        own = make_chain(flips, X=X)
        options = {True: (self.augment_, self._augment_chain, prepare.chain),
                   False: (flips, own, _join_chains(chain, own))}
        told = False

        def before_epoch(history):
            nonlocal told
            pace = history[first]["seconds"] if len(history) > first else None
            planned = _planning.projected_epochs(epochs, self.max_time, pace)
            extras = _planning.augment_extras(planned)
            self.augment_, self._augment_chain, prepare.chain = options[extras]
            if self.verbose and planned is not None and not told:
                told = True
                print(f"sksegment: augment: flips{' and turns' * (self.n_channels_in_ != 3)}"
                      f"{', affine and intensity changes' if extras else ' only'} "
                      f"(about {min(planned, 1e6):.0f} epochs; the changes from "
                      f"{_planning.MIN_EPOCHS_FOR_EXTRAS})", file=sys.stderr, flush=True)

        return before_epoch

    def _declared_depth(self):
        """``depth``, or for "auto" with a custom network that declares a
        power-of-two ``downsampling_factor``, the depth that factor means."""
        factor = downsampling_factor(self.model, None)
        if self.depth != "auto" or isinstance(self.model, str) or not isinstance(factor, int):
            return self.depth
        return factor.bit_length() - 1 if factor > 0 and factor & (factor - 1) == 0 else "auto"

    def _print_plan(self, reasons):
        fp = self.fingerprint_
        normalization = self.normalization_["kind"] if self.normalization_ else None
        lines = [(f"{fp['n_images']} images, median size {fp['shape_median']}, "
                  f"{fp['n_channels']} channel(s), {fp['dtype']}; device {fp['device']['name']}"),
                 *reasons, (f"norm {self.norm_!r}, normalize {normalization!r}, "
                            f"precision {self.precision_!r}")]
        print("\n".join("sksegment: " + line for line in lines), file=sys.stderr, flush=True)

    def _explicit_postprocessing(self):
        if self.postprocess is None or self.postprocess == "auto":
            return None
        from . import postprocessing

        return postprocessing.make_postprocessor(self.postprocess, self.n_classes_,
                                                 name="postprocess")

    def _choose_postprocessing(self, validate):
        """postprocess="auto": the steps that help on the validation data."""
        from . import postprocessing

        images, masks, chain = validate.data
        codec = LabelCodec(self.classes_, check_ignore_index(self.ignore_index))
        pred = list(self._predict_images(images, chain, "labels", verbose=0))
        truth = [codec.encode(masks[i][None], "cpu")[0].numpy() for i in range(len(masks))]
        chosen, self.postprocessing_report_ = postprocessing.select_postprocessing(
            truth, pred, self.n_classes_, ignore_index=IGNORE)
        return chosen

    def _warn_large_patch(self, images):
        if self.patch_size_ is None:
            return
        patch = self.patch_size_
        largest = tuple(max(image_shape(images, i)[axis] for i in range(len(images)))
                        for axis in (0, 1))
        if patch[0] > largest[0] or patch[1] > largest[1]:
            warnings.warn(
                f"patch_size={patch!r} is larger than the largest training image "
                f"{largest} (height, width): along that axis each patch is the whole image. "
                "A batch of images of different sizes is padded, and padded pixels count in "
                "no loss.", UserWarning, stacklevel=4)

    def _labels(self, masks, ignore):
        labels = unique_labels(masks)
        return labels if ignore is None else labels[labels != ignore]

    def _continue_plan(self):
        """warm_start / partial_fit train the fitted network on: explicit
        batch and patch sizes given since apply; the network, its
        normalisation and the optimizer (whose state goes on) must not change."""
        design = getattr(self, "_design", {})
        resolved = {"depth": self.depth_, "norm": self.norm_,
                    "normalize": (self.normalization_ or {}).get("kind")}
        for name, fitted in design.items():
            value = getattr(self, name)
            if value == "auto" and name in resolved:
                continue  # "auto" keeps what was chosen
            if name == "normalize":
                value = "zscore" if value == "auto" else value
            same = value is fitted or (type(value) is type(fitted) and value == fitted)
            if not same and not (name in resolved and value == resolved[name]):
                raise ValueError(
                    f"{name}={value!r} differs from the fitted network's "
                    f"({resolved.get(name, fitted)!r}); warm_start and partial_fit train that "
                    f"network on. Set {name} back, or fit a new network (warm_start=False, or "
                    "sklearn.base.clone).")
        if self.batch_size != "auto":
            self.batch_size_ = int(self.batch_size)
        if self.patch_size != "auto":
            self.patch_size_ = (None if self.patch_size is None else
                                tuple(int(v) for v in np.broadcast_to(self.patch_size, 2)))
            self._check_depth_fits()

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
            classes = self._partial_classes.astype(label_dtype(masks))
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

    def _make_loss(self, counts, device):
        weights = None
        if self.class_weight is not None:
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
            model = copy.deepcopy(self.model)
        else:
            extra = {"norm": self.norm_} if isinstance(self.model, str) else {}
            model = build_model(self.model, self.n_channels_in_, self.n_classes_, self.depth_,
                                self.width, **extra)
            if not isinstance(self.model, str):
                # a factory may hand out a network it keeps (or hands out again):
                # fit trains a copy, so the factory's network is never changed
                model = copy.deepcopy(model)
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(
                f"model ({type(model).__name__}) has no trainable parameters (none, or all with "
                "requires_grad=False); give a network with parameters to train.")
        return model

    def _validation_setup(self, images, masks, X_val, y_val, rng, chain, model):
        """Training indices and a ``validate() -> score`` callable (or None)."""
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if X_val is not None:
            val_images, val_chain = unwrap(X_val)
            val_images = check_images(val_images, "X_val")
            val_masks = check_masks(y_val, val_images, "y_val", "X_val")
            if n_channels(val_images) != self.n_channels_in_:
                raise ValueError(f"X_val has {n_channels(val_images)} channels; X has "
                                 f"{self.n_channels_in_}.")
            self._warn_unseen_labels(val_masks, "y_val")
            # as predict(X_val) would see them: their own preprocessing, then the
            # segmenter's own deterministic steps (not those attached to X)
            return None, self._make_validate(val_images, val_masks,
                                             _join_chains(val_chain, self._augment_chain))
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

        def validate():
            return scorer(view, images, masks)

        validate.data = (images, masks, chain)  # for post-processing chosen on them
        return validate


class _ValidationView:
    """What a scorer needs of the segmenter while it is still training."""

    def __init__(self, seg, images, chain):
        self._seg, self._images, self._chain = seg, images, chain
        self.classes_ = seg.classes_
        self.ignore_index = seg.ignore_index

    def predict(self, X):
        # silent: the epoch's own progress line reports the score
        return collect(self._seg._predict_images(self._images, self._chain, "labels",
                                                  verbose=0, tta=False),
                        self._images, self.classes_)

    def predict_proba(self, X):
        return collect(self._seg._predict_images(self._images, self._chain, "proba",
                                                  verbose=0, tta=False), self._images)

    def __getattr__(self, name):
        # anything else a scorer reads (n_classes_, predict_uncertainty, ...):
        # the segmenter's, which holds the network in training
        return getattr(self._seg, name)


def _warn_unscaled(stats):
    """normalize=None: say so when the network would see values far outside
    [0, 1] (float images in 0-255, say)."""
    low, high = min(stats["min"]), max(stats["max"])
    if high > 10 or low < -10:
        warnings.warn(
            f"X holds values from {low:.4g} to {high:.4g} and normalize=None, so the network "
            "sees them as they are; scale the images to about [0, 1] (float images in 0-255: "
            "divide by 255) or set normalize='auto'.", UserWarning, stacklevel=5)
