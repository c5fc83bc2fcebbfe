"""Data-parallel training on several processes (``torchrun``) for ``CNNSegmenter.fit``.

A script started as ``torchrun --nproc_per_node=N script.py`` runs N copies of
itself; each calls ``fit`` with the same data and parameters. :func:`start`
finds the torch.distributed environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, or a process group the
caller initialised), creates the process group when needed (NCCL on CUDA with
the device ``cuda:LOCAL_RANK``, gloo on the CPU) and checks that every rank
was given the same data and parameters. :meth:`Context.prepare` then wraps the
network in ``DistributedDataParallel`` for the training steps only and the
sampler in a :class:`ShardedSampler`; the training loop calls back for the few
figures that must agree across ranks (the finiteness of a step's loss, the
epoch's loss, the validation score) and to make every rank hold rank 0's
weights and buffers at the end of each epoch. :func:`finish` takes the wrapper
off again (the fitted ``model_`` is the plain network) and destroys the
process group only when ``fit`` created it.

The NumPy random state is the same on every rank (same ``random_state``), so
every rank draws the same permutation of an epoch's items and takes its own
interleaved share of it: the union of the ranks' k-th batches is the k-th
slice of ``batch_size * world_size`` items of that permutation, the batch one
process would take with that batch size. Random crops, augmentation and
dropout draw from seeds that differ per rank.
"""

import copy
import datetime
import hashlib
import json
import os
import warnings

import numpy as np
import torch

#: Environment variables read to join a process group (torchrun sets them all).
ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: Seconds to wait for the other ranks (rendezvous and each collective);
#: torch's own default (30 minutes) when unset.
TIMEOUT_VAR = "SKSEGMENT_DIST_TIMEOUT"


def _dist():
    import torch.distributed as dist

    return dist


def read_environment(environ=None):
    """The torch.distributed variables of ``environ`` (default ``os.environ``),
    None for those that are not set."""
    environ = os.environ if environ is None else environ
    return {name: environ.get(name) for name in ENV_VARS}


def _env_text(env):
    return ", ".join(f"{k}={'<unset>' if v is None else v}" for k, v in env.items())


def _env_int(env, name, low):
    text = env[name]
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"The environment variable {name}={text!r} is not an integer "
                         f"(read: {_env_text(env)}).") from None
    if value < low:
        raise ValueError(f"The environment variable {name}={value} must be >= {low} "
                         f"(read: {_env_text(env)}).")
    return value


def _timeout(environ=None):
    environ = os.environ if environ is None else environ
    text = environ.get(TIMEOUT_VAR)
    if text is None:
        return None  # torch's default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"The environment variable {TIMEOUT_VAR}={text!r} must be a number of "
                         "seconds > 0.")
    return datetime.timedelta(seconds=seconds)


def _no_environment(env):
    return ValueError(
        "distributed=True needs a torch.distributed environment, and none was found: no "
        f"process group is initialised and WORLD_SIZE is not set (read: {_env_text(env)}). "
        "Start the script with `torchrun --nproc_per_node=N script.py` (it sets WORLD_SIZE, "
        "RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT), initialise a process group with "
        "torch.distributed.init_process_group before fit, or use distributed='auto' or False "
        "to train in this process alone.")


def _pick_device(device, local_rank):
    """The device of this rank: ``cuda:LOCAL_RANK`` for "auto" (with CUDA) and
    for "cuda" without an index; any explicit device as given."""
    from ._training import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and (device == "auto" or dev.index is None):
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(f"This rank's LOCAL_RANK is {local_rank} but the machine has "
                             f"{count} CUDA device(s): start at most {count} processes per "
                             "machine (torchrun --nproc_per_node), one per GPU.")
        dev = torch.device("cuda", local_rank)
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Data-parallel training runs on CUDA devices or the CPU; got "
                         f"device={device!r}. Use device='auto', 'cuda' or 'cpu', or "
                         "distributed=False.")
    return dev


def start(distributed, device, data, params):
    """Join (or create) the process group for a data-parallel fit.

    Parameters
    ----------
    distributed : {"auto", True, False}
        The estimator's parameter.
    device : str or torch.device
        The estimator's ``device`` parameter.
    data : tuple
        ``(X, y, X_val, y_val)`` as given to fit; every rank must pass the same.
    params : dict
        The estimator's parameters; those that are plain values must agree.

    Returns
    -------
    Context or None
        None when the fit runs in this process alone.
    """
    from ._validation import check_option

    if check_option(distributed, "distributed", ("auto", True, False)) is False:
        return None
    env = read_environment()
    available = torch.distributed.is_available()
    if available and _dist().is_initialized():
        dist = _dist()
        world, rank = dist.get_world_size(), dist.get_rank()
        if world == 1 and distributed == "auto":
            return None
        if env["LOCAL_RANK"] is not None:
            local_rank = _env_int(env, "LOCAL_RANK", 0)
        else:
            local_rank = rank % max(torch.cuda.device_count(), 1)
        dev = _pick_device(device, local_rank)
        backend = str(dist.get_backend())
        if dev.type != "cuda" and backend == "nccl":
            raise ValueError(f"The process group uses the nccl backend, which cannot reduce "
                             f"tensors on {dev}: fit on a CUDA device (device='auto' or "
                             "'cuda'), or initialise the group with backend='gloo'.")
        created = False
    else:
        if env["WORLD_SIZE"] is None:
            if distributed is True:
                raise _no_environment(env)
            return None
        world = _env_int(env, "WORLD_SIZE", 1)
        if world == 1 and distributed == "auto":
            return None
        if not available:
            raise ValueError(f"WORLD_SIZE={world} asks for distributed training, but this "
                             "build of torch has no torch.distributed; use distributed=False.")
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if env[k] is None]
        if missing:
            raise ValueError(f"WORLD_SIZE={world} asks for distributed training, but "
                             f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                             f"set (read: {_env_text(env)}). Start the script with torchrun, "
                             "which sets them all, or use distributed=False.")
        rank = _env_int(env, "RANK", 0)
        if rank >= world:
            raise ValueError(f"RANK={rank} must be smaller than WORLD_SIZE={world}.")
        local_rank = (_env_int(env, "LOCAL_RANK", 0) if env["LOCAL_RANK"] is not None
                      else rank % max(torch.cuda.device_count(), 1))
        dev = _pick_device(device, local_rank)
        _init_group(dev, env, rank, world)
        created = True
    ctx = Context(dev, rank, world, created)
    try:
        ctx.check_same(describe(data, params))
    except BaseException:
        ctx.close()
        raise
    return ctx


#: The rendezvous store of each (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE)
#: and the number of groups made on it: [store, count].
_STORES = {}


def _group_store(env, rank, world, timeout):
    """A fresh key space on this process's rendezvous store.

    The store (a TCPStore server on rank 0, or torchrun's agent store) is made
    once and kept: a later fit that bound MASTER_PORT again could reach the
    previous server before it closed, and one that reused torchrun's store
    would read the keys the previous group left there; either hangs. Each
    group gets a prefix of its own instead; every rank makes the same fits in
    the same order, so the counts agree.
    """
    dist = _dist()
    key = (env["MASTER_ADDR"], env["MASTER_PORT"], rank, world)
    entry = _STORES.get(key)
    if entry is None:
        kwargs = {} if timeout is None else {"timeout": timeout}
        store = next(dist.rendezvous("env://", rank=rank, world_size=world, **kwargs))[0]
        entry = _STORES[key] = [store, 0]
    if timeout is not None:
        entry[0].set_timeout(timeout)
    entry[1] += 1
    return dist.PrefixStore(f"sksegment/fit-{entry[1]}", entry[0])


def _init_group(dev, env, rank, world):
    dist = _dist()
    backend = "nccl" if dev.type == "cuda" and dist.is_nccl_available() else "gloo"
    timeout = _timeout()
    kwargs = {"backend": backend, "rank": rank, "world_size": world}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        kwargs["device_id"] = dev
    try:
        dist.init_process_group(store=_group_store(env, rank, world, timeout), **kwargs)
    except Exception as exc:
        waited = ("torch's default of 30 minutes" if timeout is None
                  else f"{timeout.total_seconds():g} s")
        reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
        raise RuntimeError(
            f"Could not initialise the torch.distributed process group ({backend}) from the "
            f"environment {_env_text(env)} (waited {waited}): {type(exc).__name__}: {reason}. "
            "Check that all WORLD_SIZE processes were started with the same MASTER_ADDR and "
            "MASTER_PORT, that rank 0 is running and reachable there and its port is free "
            "(torchrun sets these variables for you); set "
            f"{TIMEOUT_VAR} (seconds) to wait longer, or fit with distributed=False to "
            "train in this process alone.") from exc


# --------------------------------------------------------------------------- #
# what every rank must agree on
# --------------------------------------------------------------------------- #
def _describe_images(obj):
    """Type, shapes, dtype and a hash of a few sampled pixels; never raises."""
    if obj is None:
        return None
    from .augmentation import AugmentedImages

    if isinstance(obj, AugmentedImages):
        obj = obj.images
    if isinstance(obj, np.ndarray):
        n = obj.shape[0] if obj.ndim else 0
        picks = np.unique(np.linspace(0, max(n - 1, 0), num=min(n, 8)).astype(int)) if n else []
        digest = hashlib.blake2b(digest_size=8)
        for i in picks:
            item = obj[i]
            step = max(1, max(item.shape[:2] or (1,)) // 64)
            digest.update(np.ascontiguousarray(item[::step, ::step] if item.ndim >= 2
                                               else item).tobytes())
        return {"type": "array", "shape": list(obj.shape), "dtype": obj.dtype.str,
                "sample": digest.hexdigest()}
    if isinstance(obj, (list, tuple)):
        shapes = [list(np.shape(a)) for a in obj]
        dtypes = sorted({str(getattr(a, "dtype", type(a).__name__)) for a in obj})
        return {"type": "list", "n": len(obj),
                "shapes": hashlib.blake2b(json.dumps(shapes).encode(), digest_size=8).hexdigest(),
                "first_shape": shapes[0] if shapes else None, "dtypes": dtypes}
    return {"type": type(obj).__name__, "shape": list(getattr(obj, "shape", ()) or ())}


def _is_plain(value):
    """None, a bool, number or string, or tuples, lists and dicts of them
    (a patch size, class weights): values every rank can compare."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def _as_plain(value):
    """A plain value in JSON's terms (dict keys as their repr, tuples as lists)."""
    if isinstance(value, (tuple, list)):
        return [_as_plain(v) for v in value]
    if isinstance(value, dict):
        return {repr(k): _as_plain(v) for k, v in sorted(value.items(), key=repr)}
    return value


def describe(data, params):
    """A small JSON-able description of the data and the plain parameters of a fit."""
    X, y, X_val, y_val = data
    plain = {k: _as_plain(v) for k, v in sorted(params.items()) if _is_plain(v)}
    return {"X": _describe_images(X), "y": _describe_images(y),
            "X_val": _describe_images(X_val), "y_val": _describe_images(y_val),
            "parameters": plain}


def _differences(descriptions):
    """Lines naming what differs between the ranks' descriptions."""
    lines = []
    first = descriptions[0]
    for key in first:
        values = [d.get(key) for d in descriptions]
        if key == "parameters":
            names = sorted({n for v in values for n in v})
            for name in names:
                got = [v.get(name, "<missing>") for v in values]
                if any(g != got[0] for g in got):
                    lines.append(f"parameter {name}: " + ", ".join(
                        f"rank {r} has {g!r}" for r, g in enumerate(got)))
        elif any(v != values[0] for v in values):
            lines.append(f"{key}: " + "; ".join(f"rank {r} has {v}" for r, v in
                                                enumerate(values)))
    return lines


# --------------------------------------------------------------------------- #
# the context of one data-parallel fit
# --------------------------------------------------------------------------- #
class Context:
    """This rank's place in a data-parallel fit, and the collectives it needs.

    Every collective runs on tensors on :attr:`comm_device` (the CUDA device
    with NCCL, else the CPU), in the same order on every rank.
    """

    def __init__(self, device, rank, world_size, created):
        self.device, self.rank, self.world_size = device, rank, world_size
        self.created = created  # destroy the group at the end of fit
        # NCCL reduces CUDA tensors only; gloo takes CPU tensors everywhere
        backend = str(_dist().get_backend()) if _dist().is_initialized() else ""
        nccl = device.type == "cuda" and "nccl" in backend
        self.comm_device = device if nccl else torch.device("cpu")
        self._trainer = None
        self._swapped = []  # (parent, name, original batch-norm module)

    @property
    def is_main(self):
        """Rank 0: the one that shows progress and writes checkpoints."""
        return self.rank == 0

    # -- small collectives ------------------------------------------------- #
    def _all_gather_bytes(self, payload):
        dist = _dist()
        data = torch.tensor(list(payload), dtype=torch.uint8, device=self.comm_device)
        size = torch.tensor([data.numel()], dtype=torch.int64, device=self.comm_device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.comm_device)
        padded[:data.numel()] = data
        out = [torch.zeros_like(padded) for _ in range(self.world_size)]
        dist.all_gather(out, padded)
        return [bytes(o[:int(s.item())].cpu().tolist()) for o, s in zip(out, sizes)]

    def check_same(self, description):
        """Raise on every rank when the ranks describe different fits."""
        gathered = self._all_gather_bytes(json.dumps(description, sort_keys=True).encode())
        descriptions = [json.loads(g) for g in gathered]
        if all(d == descriptions[0] for d in descriptions):
            return
        raise ValueError(
            "The ranks of this distributed fit were called with different data or parameters: "
            + "; ".join(_differences(descriptions))
            + ". Every rank must call fit with the same X, y (and X_val, y_val) and the same "
            "parameters: each rank takes its own share of every epoch's batches from them.")

    def all_finite(self, flag):
        """True on every rank when ``flag`` (a bool tensor) is True on all."""
        value = flag.to(device=self.comm_device, dtype=torch.int32).reshape(1)
        _dist().all_reduce(value, op=_dist().ReduceOp.MIN)
        return value[0].bool().to(flag.device)

    def max_float(self, number):
        """The largest ``number`` over the ranks, on every rank (the seconds
        of a time budget spent: one learning-rate schedule and one stop)."""
        value = torch.tensor([float(number)], dtype=torch.float64, device=self.comm_device)
        _dist().all_reduce(value, op=_dist().ReduceOp.MAX)
        return float(value.item())

    def broadcast_float(self, number):
        """Rank 0's ``number`` (a validation score, an epoch's seconds), on
        every rank."""
        value = torch.tensor([float(number)], dtype=torch.float64, device=self.comm_device)
        _dist().broadcast(value, src=0)
        return float(value.item())

    def rank_seed(self, seed):
        """The seed for this rank's torch and augmentation draws (rank 0 keeps
        ``seed``, so it draws what a fit in one process would)."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0] >> 1)

    def end_epoch(self, model, loss_sum, n_done):
        """Sum the epoch's loss and step count over the ranks, and give every
        rank rank 0's parameters and buffers (batch-norm statistics that are
        not synchronised differ after the last step)."""
        dist = _dist()
        figures = torch.stack([loss_sum.detach().to(self.comm_device, torch.float64).reshape(()),
                               torch.tensor(float(n_done), dtype=torch.float64,
                                            device=self.comm_device)])
        dist.all_reduce(figures)
        self.broadcast_state(model)
        return figures[0], round(figures[1].item())

    def share_random_state(self, rng):
        """Give ``rng`` (a NumPy RandomState) rank 0's state on every rank, so
        that all ranks draw one stream, with ``random_state=None`` too."""
        name, keys, pos, has_gauss, cached = rng.get_state()
        packed = np.concatenate([keys.astype(np.float64), [pos, has_gauss, cached]])
        value = torch.from_numpy(packed).to(self.comm_device)
        _dist().broadcast(value, src=0)
        packed = value.cpu().numpy()
        rng.set_state((name, packed[:-3].astype(np.uint32), int(packed[-3]), int(packed[-2]),
                       float(packed[-1])))

    def broadcast_state(self, model):
        """Copy rank 0's parameters and buffers into ``model`` on every rank,
        one flat tensor per dtype."""
        dist = _dist()
        groups = {}
        for tensor in model.state_dict().values():
            if tensor.numel():
                groups.setdefault(tensor.dtype, []).append(tensor)
        with torch.no_grad():
            for tensors in groups.values():
                flat = torch.cat([t.detach().reshape(-1).to(self.comm_device) for t in tensors])
                dist.broadcast(flat, src=0)
                offset = 0
                for t in tensors:
                    t.copy_(flat[offset:offset + t.numel()].view_as(t))
                    offset += t.numel()

    # -- wiring into a fit -------------------------------------------------- #
    def prepare(self, trainer, sampler, validate, epochs, done, compile=False):
        """Wrap the training: DDP around ``trainer.model`` for the steps
        (SyncBatchNorm on CUDA), a sharded ``sampler`` and a ``validate`` whose
        score is rank 0's. Checks first that every rank has ``epochs`` epochs
        left after ``done`` (a checkpoint seen by one rank only shows here).

        Returns ``(sampler, validate)``.
        """
        from torch.nn.parallel import DistributedDataParallel

        from ._training import try_compile

        self.check_same({"epochs to run": int(epochs), "epochs done": int(done)})
        # DDP's note that a gradient's strides differ from its bucket's (a
        # 1-channel convolution's weight on the CPU) costs a copy, nothing else
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        model = trainer.model
        if self.device.type == "cuda":
            self._to_sync_batchnorm(model)
        ddp = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        trainer.forward = try_compile(ddp) if compile else ddp
        trainer.dist = self
        self._trainer = trainer
        sharded = ShardedSampler(sampler, self.rank, self.world_size)
        if validate is None:
            return sharded, None

        def shared():  # rank 0's score on every rank
            return self.broadcast_float(validate())

        shared.data = validate.data  # post-processing is chosen on the same images
        return sharded, shared

    def _to_sync_batchnorm(self, model):
        """Swap each batch-norm layer for a SyncBatchNorm sharing its
        parameters and buffers (so the optimizer and the originals see every
        update); :meth:`close` puts the originals back."""
        bn = torch.nn.modules.batchnorm._BatchNorm
        for parent in model.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, bn) and not isinstance(child, torch.nn.SyncBatchNorm):
                    setattr(parent, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
                    self._swapped.append((parent, name, child))

    def close(self, completed=False):
        """Take DDP and SyncBatchNorm off the network (in place) and destroy
        the process group when this fit created it: after a barrier when the
        fit ``completed`` on every rank (gloo ranks that left one another
        without it aborted at exit, "terminate called without an active
        exception", in about a third of the runs)."""
        trainer, self._trainer = self._trainer, None
        if trainer is not None:
            trainer.forward = trainer.model
            trainer.dist = None
        for parent, name, original in reversed(self._swapped):
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)
        self._swapped = []
        if self.created:
            self.created = False
            dist = _dist()
            if dist.is_initialized():
                if completed:
                    dist.barrier()
                dist.destroy_process_group()


def finish(ctx, completed=False):
    """End a data-parallel fit (no-op for None); ``completed``: it returned
    normally, so every rank reaches this point."""
    if ctx is not None:
        ctx.close(completed)


# --------------------------------------------------------------------------- #
# batches
# --------------------------------------------------------------------------- #
class ShardedSampler:
    """This rank's share of the batches of a sampler with ``epoch_items(indices)``
    and ``batch(idx, rng)`` (:class:`sksegment._sampling.BatchSampler`).

    Every rank draws the same permutation from the shared NumPy random state
    and takes the items ``rank, rank + W, rank + 2W, ...`` of it, ``batch_size``
    at a time; when the number of items is not a multiple of ``W`` the
    permutation is wrapped around (a few items are drawn twice) so that every
    rank takes the same number of steps. Crops (``batch``) draw from a random
    state of this rank's own, seeded from the shared one without advancing it.
    """

    def __init__(self, sampler, rank, world_size):
        self.sampler, self.rank, self.world_size = sampler, rank, world_size
        self.batch_size = sampler.batch_size

    def _per_rank(self, indices):
        return -(-len(self.sampler.epoch_items(indices)) // self.world_size)

    def n_batches(self, indices=None):
        return -(-self._per_rank(indices) // self.batch_size)

    def epoch(self, rng, indices=None):
        items = self.sampler.epoch_items(indices)
        order = items[rng.permutation(len(items))]
        per_rank = -(-len(order) // self.world_size)
        mine = np.resize(order, per_rank * self.world_size)[self.rank::self.world_size]
        seed = int(copy.deepcopy(rng).randint(np.iinfo(np.int32).max))
        local = np.random.RandomState([seed, self.rank])
        for start in range(0, per_rank, self.batch_size):
            yield self.sampler.batch(mine[start:start + self.batch_size], local)
