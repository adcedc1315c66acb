"""Sample submissions of ``custom_layers`` (format: see ``samples.py``).

Two typical bugs per exercise: a reduction that multiplies by the input
only once, a weight kept as a plain tensor (not registered), a
standardization that drops the reduced axis, and one that divides by the
sample variance (n - 1) instead of the variance.
"""

# Sums weight[i, j, k] * x[i] over i and j: the second factor x[j] is
# missing, so the layer is linear in its input.
LINEAR_ONLY = '''
class TensorReduction(nn.Block):
    def __init__(self, in_units, out_units):
        super().__init__()
        self.in_units, self.out_units = in_units, out_units
        self.weight = nn.Parameter(db.randn(in_units, in_units, out_units) * 0.1)

    def forward(self, X):
        n, k = self.in_units, self.out_units
        if X.shape[-1] != n:
            raise ValueError(f"expected {n} features, got {X.shape[-1]}")
        partial = (X @ self.weight.reshape(n, n * k)).reshape(X.shape[0], n, k)
        return partial.sum(axis=1)
'''

# Right formula, but the weight is a plain tensor: never registered, so
# it is not a parameter, not saved, not loaded and gets no gradient.
PLAIN_TENSOR_WEIGHT = '''
class TensorReduction(nn.Block):
    def __init__(self, in_units, out_units):
        super().__init__()
        self.in_units, self.out_units = in_units, out_units
        self.weight = db.randn(in_units, in_units, out_units) * 0.1

    def forward(self, X):
        n, k = self.in_units, self.out_units
        if X.shape[-1] != n:
            raise ValueError(f"expected {n} features, got {X.shape[-1]}")
        batch = X.shape[0]
        partial = (X @ self.weight.reshape(n, n * k)).reshape(batch, n, k)
        return (partial * X.reshape(batch, n, 1)).sum(axis=1)
'''

# Without keepdims the mean only broadcasts back when it was taken over
# the first axis.
NO_KEEPDIMS = '''
class Standardize(nn.Block):
    def __init__(self, axis=-1, eps=1e-5):
        super().__init__()
        self.axis, self.eps = axis, eps

    def forward(self, X):
        centered = X - X.mean(axis=self.axis)
        variance = (centered * centered).mean(axis=self.axis)
        return centered / (variance + self.eps).sqrt()
'''

# Divides by the sample standard deviation (n - 1 in the variance).
SAMPLE_VARIANCE = '''
class Standardize(nn.Block):
    def __init__(self, axis=-1, eps=1e-5):
        super().__init__()
        self.axis, self.eps = axis, eps

    def forward(self, X):
        n = X.shape[self.axis]
        centered = X - X.mean(axis=self.axis, keepdims=True)
        variance = (centered * centered).sum(axis=self.axis, keepdims=True) / (n - 1)
        return centered / (variance + self.eps).sqrt()
'''

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "linear_only": {"base": "correct",
                    "cells": {"tensor_reduction": LINEAR_ONLY}},
    "plain_tensor_weight": {"base": "correct",
                            "cells": {"tensor_reduction": PLAIN_TENSOR_WEIGHT}},
    "no_keepdims": {"base": "correct", "cells": {"standardize": NO_KEEPDIMS}},
    "sample_variance": {"base": "correct",
                        "cells": {"standardize": SAMPLE_VARIANCE}},
}
"""student id -> how that student's notebooks differ from the base."""

EXPECTED = {
    "correct": 18,
    "blank": 0,
    "linear_only": 13,          # shape, parameter and error tests only
    "plain_tensor_weight": 10,  # only the input-size error in exercise 1
    "no_keepdims": 10,          # only "no parameters" in exercise 2
    "sample_variance": 11,      # "no parameters" and the Sequential test
}
"""student id -> total automatic score (out of 18)."""
