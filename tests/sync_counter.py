"""Counting the operations that make a GPU wait for the host, on any device.

On CUDA, reading a value back (``.item()``, ``bool(t)``), ``nonzero()`` and
boolean-mask indexing (which needs ``nonzero`` to size its output) each stop
the host until the device has caught up. :class:`SyncCounter` records those
operations as they pass through PyTorch's dispatcher, so a test on the CPU can
count the syncs a piece of code would make on a GPU.
"""

import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Operators whose output size or value the host must read from the device.
SYNC_OPS = {
    "aten._local_scalar_dense",  # .item(), bool(t), float(t), int(t)
    "aten.nonzero",
    "aten.masked_select",
    "aten._unique2",
    "aten.unique_dim",
    "aten.unique_consecutive",
    "aten.repeat_interleave",
}
#: Operators that sync when an index is a boolean mask.
INDEX_OPS = {"aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"}


def _is_bool_index(args):
    return any(isinstance(a, (list, tuple))
               and any(isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in a)
               for a in args)


class SyncCounter(TorchDispatchMode):
    """Record the host-device syncs of the code run inside ``with``.

    ``syncs`` lists the operator names in call order. ``ignore`` names
    functions (``"file.py:function"``, or a path fragment such as
    ``"torch/optim/"``) whose reads are not device syncs and are not counted
    when they are on the call stack: an optimizer's step counter kept on the
    host, say, or a check that runs on the CPU only.
    """

    def __init__(self, ignore=()):
        super().__init__()
        self.syncs = []
        self.ignore = tuple(ignore)

    def _ignored(self):
        if not self.ignore:
            return False
        for frame in traceback.extract_stack():
            where = f"{frame.filename}:{frame.name}"
            if any(part in where for part in self.ignore):
                return True
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket._qualified_op_name.replace("::", ".")
        if (name in SYNC_OPS or (name in INDEX_OPS and _is_bool_index(args))) \
                and not self._ignored():
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))

    @property
    def count(self):
        return len(self.syncs)
