"""Batches prepared ahead: while the device trains on one batch, a background
thread draws, reads, crops and stacks the next ones.

The thread runs the batch iterator exactly as the training loop would, in the
same order, so the batches (and the random draws behind them) are the same
with and without prefetching; only their timing changes. Reading images
(from memory, a memory map or a store on disk), cropping and stacking happen
in NumPy, which releases the interpreter lock for the copies, so the host
work of batch k+1 overlaps the device work of batch k. For a CUDA device the
batch is also copied into page-locked (pinned) memory there, so that the copy
to the device can be asynchronous (``non_blocking=True``).
"""

import queue
import threading

import numpy as np
import torch

_DONE = object()


class _Failure:
    def __init__(self, exc):
        self.exc = exc


def pin(batch):
    """A batch ``(x, y, valid)`` of NumPy arrays as pinned CPU tensors
    (``valid`` may be None)."""
    return tuple(None if a is None else torch.from_numpy(np.ascontiguousarray(a)).pin_memory()
                 for a in batch)


class Prefetcher:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead.

    Parameters
    ----------
    iterable : iterable
        The batches; consumed by the background thread only.
    depth : int, default=2
        Items prepared ahead.
    transform : callable or None
        Applied to each item in the background thread (for example
        :func:`pin`).

    An exception raised by the iterable is raised again by the consumer at the
    point where it would have been raised without prefetching. :meth:`close`
    (also called at the end of a ``with`` block) stops the thread early.

    Examples
    --------
    >>> from sksegment._prefetch import Prefetcher
    >>> with Prefetcher(range(5), depth=2) as items:
    ...     list(items)
    [0, 1, 2, 3, 4]
    """

    def __init__(self, iterable, depth=2, transform=None):
        self._queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable), transform),
                                        name="sksegment-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterator, transform):
        try:
            for item in iterator:
                if self._stop.is_set():
                    return
                if not self._put(item if transform is None else transform(item)):
                    return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self):
        """Stop the background thread and drop what it prepared."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
