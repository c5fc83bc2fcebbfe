"""A small table-driven check of estimator parameters.

scikit-learn's own ``_param_validation`` is private API; this module gives the
same kind of messages with a few lines of our own.
"""

import numbers


class InvalidParameterError(ValueError, TypeError):
    """Raised when a parameter has a bad type or value.

    Subclasses both ValueError and TypeError, like scikit-learn's error of the
    same name, so either ``except`` clause catches it.
    """


class Interval:
    """Numbers of ``kind`` (int or float) in a range; ``closed`` is one of
    "both", "left", "right", "neither"."""

    def __init__(self, kind, left, right, closed="both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def accepts(self, value):
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real):
            return False
        lo_ok = (self.left is None or value > self.left
                 or (value == self.left and self.closed in ("both", "left")))
        hi_ok = (self.right is None or value < self.right
                 or (value == self.right and self.closed in ("both", "right")))
        return lo_ok and hi_ok

    def __str__(self):
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        name = "an int" if self.kind is int else "a float"
        return f"{name} in the range {lb}{left}, {right}{rb}"


class Options:
    """One of a fixed set of values (strings, booleans, None)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value):
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class InstanceOf:
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
