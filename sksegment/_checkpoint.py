"""Checkpoints of a training run: written atomically, read safely, on any device.

A checkpoint holds plain data only (tensors, numbers, strings, lists and
dicts), so it is read with ``torch.load(..., weights_only=True)``: a file
planted in the checkpoint folder cannot run code. Tensors are stored on the
CPU and loaded there; ``Optimizer.load_state_dict`` and
``Module.load_state_dict`` then place them beside the parameters they belong
to, so a checkpoint written on a GPU resumes on the CPU and the other way
round (Adam's ``step`` counters stay on the CPU, where the optimizer keeps
them). Random state is the NumPy generator's state (as lists), which is the
same on every device: each epoch reseeds torch from it.

A file that cannot be used (truncated, random bytes, empty, written by other
software, or for another network, optimizer, other classes or channels)
raises one :class:`CheckpointError` that names the file and says what to do.
"""

import os
import tempfile

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"

#: Bumped when the layout of the stored dict changes.
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from (named in the message).

    A subclass of ``ValueError``; raised by ``fit(..., resume=True)`` for a
    truncated, empty or foreign file, or one written for another network.
    The estimator is left as it was.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sksegment import CNNSegmenter, CheckpointError
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "checkpoint.pt"), "wb") as fh:
    ...     _ = fh.write(b"not a checkpoint")
    >>> X = np.zeros((2, 16, 16), dtype=np.uint8)
    >>> y = np.zeros((2, 16, 16), dtype=np.uint8); y[:, 4:8, 4:8] = 1
    >>> seg = CNNSegmenter(width=2, max_epochs=1, checkpoint_dir=folder, resume=True)
    >>> try:
    ...     seg.fit(X, y)
    ... except CheckpointError as exc:
    ...     print("checkpoint.pt" in str(exc), hasattr(seg, "model_"))
    True False
    """


def _fix(path):
    return (f"Delete {path} to start afresh, or fit with resume=False (or another "
            "checkpoint_dir).")


def check_checkpoint_dir(folder):
    """Create ``folder`` if needed and make sure a file can be written there;
    returns the checkpoint path. Raises ``ValueError`` naming the folder."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"checkpoint_dir={folder!r} cannot be written to ({exc.strerror or exc}); "
                         "give a folder you can write to, or checkpoint_dir=None.") from None
    path = os.path.join(folder, CHECKPOINT_NAME)
    if os.path.isdir(path):  # the atomic rename onto it would fail after the first epoch
        raise CheckpointError(
            f"checkpoint_dir={folder!r}: {path} is a directory, where the checkpoint file "
            f"{CHECKPOINT_NAME!r} is written; move or delete that directory, or give another "
            "checkpoint_dir.")
    return path


#: Optimizer hyper-parameters recorded in a checkpoint: those that decide the
#: layout of the optimizer's state (SGD keeps a momentum buffer only with
#: momentum, Adam a running maximum only with amsgrad) or its update rule.
_OPTIMIZER_KEYS = ("momentum", "nesterov", "amsgrad")


def optimizer_meta(optimizer):
    """The optimizer of a run as a checkpoint records it: its class and the
    hyper-parameters that shape its state, for example ``"Adam"`` or
    ``"SGD(momentum=0.9, nesterov=True)"``."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    extras = ", ".join(f"{key}={group[key]!r}" for key in _OPTIMIZER_KEYS if group.get(key))
    name = type(optimizer).__name__
    return f"{name}({extras})" if extras else name



def to_cpu(obj):
    """A copy of ``obj`` with every tensor cloned to the CPU (by value)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((k, to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def rng_state(rng):
    """A NumPy RandomState's state as plain lists and numbers."""
    name, keys, pos, has_gauss, cached = rng.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def set_rng_state(rng, state):
    rng.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],
                   state["has_gauss"], state["cached"]))


def save_checkpoint(path, state):
    """Write ``state`` (plain data) to ``path`` atomically: a temporary file in
    the same folder, then a rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(dict(state, format=FORMAT), tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise



def read_checkpoint(path, expected):
    """Read the checkpoint at ``path`` and check it against ``expected`` (a
    dict of metadata the run must match: classes, channels, network, optimizer).

    Returns the stored dict. Raises :class:`CheckpointError` for anything that
    is not a usable checkpoint of this run.
    """
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise CheckpointError(f"Checkpoint {path} cannot be read ({exc.strerror}). "
                              + _fix(path)) from None
    if size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty (0 bytes), probably left by a "
                              "crash while it was written. " + _fix(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes torch.load raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"Checkpoint {path} is not a readable sksegment checkpoint: it is truncated, "
            f"corrupt, or holds objects other than plain training state ({reason}). "
            + _fix(path)) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "meta" not in state:
        raise CheckpointError(f"Checkpoint {path} was not written by this version of "
                              "sksegment's CNNSegmenter. " + _fix(path))
    for key, want in expected.items():
        got = state["meta"].get(key)
        if got != want:
            raise CheckpointError(
                f"Checkpoint {path} belongs to another training run: its {key} is {got!r} but "
                f"this fit has {want!r}. " + _fix(path))
    return state


def load_into(path, what, load):
    """Call ``load()`` (which loads stored state into live objects) and turn a
    mismatch into a :class:`CheckpointError` naming ``path`` and ``what``."""
    try:
        load()
    except (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError)):
        raise  # the machine's limit, not the file's fault
    except Exception as exc:  # noqa: BLE001 - whatever torch's loaders raise for a misfit
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"Checkpoint {path} does not fit this run's {what} ({reason}). "
                              + _fix(path)) from None


def resume(path, meta, trainer, log, rng, epochs):
    """Load the checkpoint at ``path`` into the live objects; returns the
    epochs left to run."""
    state = read_checkpoint(path, meta)
    load_into(path, "network and optimizer", lambda: trainer.load_state_dict(state["trainer"]))
    load_into(path, "training log", lambda: log.load_state_dict(state["log"]))
    load_into(path, "random state", lambda: set_rng_state(rng, state["rng"]))
    return max(0, epochs - len(log.history))
