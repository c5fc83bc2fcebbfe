"""One vocabulary for checking arguments, used by every module of sksegment.

Two layers:

- scalar checkers (:func:`check_int`, :func:`check_number`, :func:`check_bool`,
  :func:`check_option`, :func:`check_size`) that return the cleaned value or
  raise ``TypeError`` (wrong type) / ``ValueError`` (wrong value) with a message
  that names the argument and says what was expected, and :func:`did_you_mean`,
  which suggests the closest known name for a misspelt one;
- constraint objects (:class:`Interval`, :class:`Options`, :class:`InstanceOf`,
  :class:`IsCallable`) and :func:`validate_params`, which check a dict of
  estimator parameters against a table, as scikit-learn's private
  ``_param_validation`` does, in a few lines of our own.

Floats are always required to be finite: ``inf`` and ``NaN`` are never a valid
learning rate, probability or tolerance.
"""

import difflib
import math
import numbers

import numpy as np


class InvalidParameterError(ValueError, TypeError):
    """Raised when a parameter has a bad type or value.

    Subclasses both ValueError and TypeError, like scikit-learn's error of the
    same name, so either ``except`` clause catches it.
    """


def is_int(value):
    """An integer that is not a bool (NumPy integers count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """A real number that is not a bool (NumPy numbers count)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bounds_text(low, high, low_open, high_open):
    if low is not None and high is None:
        return f"> {low:g}" if low_open else f">= {low:g}"
    if low is None and high is not None:
        return f"< {high:g}" if high_open else f"<= {high:g}"
    if low is None and high is None:
        return ""
    lb = "(" if low_open else "["
    rb = ")" if high_open else "]"
    return f"in {lb}{low:g}, {high:g}{rb}"


def _in_bounds(value, low, high, low_open, high_open):
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return high is None or not (value > high or (high_open and value == high))


def check_int(value, name, *, low=None, high=None):
    """An integer (not a bool) in ``[low, high]``, as ``int``.

    >>> check_int(3, "depth", low=1)
    3
    >>> check_int(0, "depth", low=1)
    Traceback (most recent call last):
    ...
    ValueError: depth must be an integer >= 1; got 0.
    """
    bounds = _bounds_text(low, high, False, False)
    text = "an integer" + (f" {bounds}" if bounds else "")
    if not is_int(value):
        raise TypeError(f"{name} must be {text}; got {value!r}.")
    if not _in_bounds(value, low, high, False, False):
        raise ValueError(f"{name} must be {text}; got {value!r}.")
    return int(value)


def check_number(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """A finite real number (not a bool) within the bounds, as ``float``.

    >>> check_number(0.5, "p", low=0, high=1)
    0.5
    >>> check_number(float("inf"), "learning_rate", low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate must be a finite number > 0; got inf.
    """
    bounds = _bounds_text(low, high, low_open, high_open)
    text = "a finite number" + (f" {bounds}" if bounds else "")
    if not is_real(value):
        raise TypeError(f"{name} must be {text}; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or not _in_bounds(value, low, high, low_open, high_open):
        raise ValueError(f"{name} must be {text}; got {value!r}.")
    return value


def check_bool(value, name):
    """True or False (NumPy bools count), as ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_random_state_arg(random_state, name="random_state"):
    """``random_state`` as :func:`sklearn.utils.check_random_state` takes it
    (None, an int in [0, 2**32 - 1], a ``numpy.random.RandomState``), or an
    error naming it. Returned unchanged.

    >>> from sksegment._validation import check_random_state_arg
    >>> check_random_state_arg(-1)
    Traceback (most recent call last):
    ...
    ValueError: random_state must be None, an integer in [0, 2**32 - 1] or a numpy.random.RandomState; got -1.
    """
    if random_state is None or random_state is np.random or isinstance(
            random_state, np.random.RandomState):
        return random_state
    text = (f"{name} must be None, an integer in [0, 2**32 - 1] or a "
            f"numpy.random.RandomState; got {random_state!r}")
    if not is_int(random_state):
        raise TypeError(f"{text} ({type(random_state).__name__}).")
    if not 0 <= random_state <= 2**32 - 1:
        raise ValueError(f"{text}.")
    return random_state


def did_you_mean(value, names):
    """``"did you mean 'x'?"`` for the name closest to ``value``, or ``""``.

    Only strings are compared, ignoring case; ``names`` may hold other values.

    >>> did_you_mean("cross-entropy", ["cross_entropy", "dice"])
    "did you mean 'cross_entropy'?"
    >>> did_you_mean("segnet", ["unet", "fcn"])
    ''
    """
    if not isinstance(value, str):
        return ""
    lowered = {n.lower(): n for n in names if isinstance(n, str)}
    match = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.7)
    return f"did you mean {lowered[match[0]]!r}?" if match else ""


def check_option(value, name, options):
    """One of ``options`` (compared by type and value, so ``1`` is not ``True``).

    >>> check_option("zero", "padding_mode", ("zeros", "border"))
    Traceback (most recent call last):
    ...
    ValueError: padding_mode must be one of 'zeros', 'border'; got 'zero'; did you mean 'zeros'?
    """
    if not Options(*options).accepts(value):
        hint = did_you_mean(value, options)
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; "
                         f"got {value!r}" + (f"; {hint}" if hint else "."))
    return value


def check_size(value, name, *, low=1):
    """An int or a pair of ints, each >= ``low``, as a tuple ``(h, w)``.

    >>> check_size(64, "patch_size")
    (64, 64)
    >>> check_size((32, 48), "tile_size")
    (32, 48)
    """
    text = f"{name} must be an integer >= {low} or a pair (h, w) of them; got {value!r}."
    if is_int(value):
        v = check_int(value, name, low=low)
        return v, v
    if not isinstance(value, (tuple, list)) or not all(is_int(v) for v in value):
        raise TypeError(text)
    if len(value) != 2 or min(value) < low:
        raise ValueError(text)
    return int(value[0]), int(value[1])


# --------------------------------------------------------------------------- #
# constraint objects for parameter tables
# --------------------------------------------------------------------------- #
class Interval:
    """Numbers of ``kind`` (int or float) in a range; ``closed`` is one of
    "both", "left", "right", "neither". Floats must be finite."""

    def __init__(self, kind, left, right, closed="both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def accepts(self, value):
        if self.kind is int and not is_int(value):
            return False
        if not is_real(value) or not math.isfinite(value):
            return False
        return _in_bounds(value, self.left, self.right,
                          self.closed in ("right", "neither"), self.closed in ("left", "neither"))

    def __str__(self):
        name = "an int" if self.kind is int else "a finite float"
        bounds = _bounds_text(self.left, self.right, self.closed in ("right", "neither"),
                              self.closed in ("left", "neither"))
        return f"{name} {bounds}".rstrip()


class Options:
    """One of a fixed set of values (strings, booleans, None)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value):
        if isinstance(value, (np.str_, np.bool_)):  # from NumPy arrays (a parameter grid)
            value = value.item()
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class InstanceOf:
    """An instance of one of ``types``; ``label`` says it in words."""

    def __init__(self, *types, label=None):
        self.types, self.label = types, label

    def accepts(self, value):
        return isinstance(value, self.types)

    def __str__(self):
        return self.label or "an instance of " + " or ".join(t.__name__ for t in self.types)


class IsCallable:
    def __init__(self, label="a callable"):
        self.label = label

    def accepts(self, value):
        return callable(value)

    def __str__(self):
        return self.label


class IsSize:
    """An int >= ``low`` or a pair ``(h, w)`` of them."""

    def __init__(self, low=1):
        self.low = low

    def accepts(self, value):
        try:
            check_size(value, "value", low=self.low)
        except (TypeError, ValueError):
            return False
        return True

    def __str__(self):
        return f"an int >= {self.low} or a pair (h, w) of them"


def validate_params(owner, params, table):
    """Check ``params`` (a dict) against ``table`` (name -> list of constraints).

    Raises :class:`InvalidParameterError` naming the first parameter that fits
    none of its constraints.
    """
    for name, constraints in table.items():
        value = params[name]
        if any(c.accepts(value) for c in constraints):
            continue
        expected = "; or ".join(str(c) for c in constraints)
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead."
        )
