"""Sample submissions of ``parameter_initialization`` (format: see
samples.py)."""

# Clips the draws to the bound instead of drawing them again.
CLIPS = '''
class TruncatedNormal(init.Initializer):
    def __init__(self, std=0.02):
        self.std = std

    def sample(self, shape, rng):
        values = rng.normal(0.0, self.std, size=shape)
        return np.clip(values, -2 * self.std, 2 * self.std)
'''

# Right values, but new Parameter objects replace the layer's own.
REPLACES_PARAMETERS = '''
def make_identity(layer):
    rows, cols = layer.weight.shape
    if rows != cols:
        raise ValueError(f"not square: {rows} x {cols}")
    layer.weight = nn.Parameter(db.tensor(np.eye(rows, dtype=np.float32)))
    if layer.bias is not None:
        layer.bias = nn.Parameter(db.zeros(rows))
    return layer
'''

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "clips": {"base": "correct", "cells": {"truncated_normal": CLIPS}},
    "replaces_parameters": {"base": "correct",
                            "cells": {"identity_function": REPLACES_PARAMETERS}},
}

# Test points: ex1_truncated 6 (shape 1, bound 2, redraw 2, lazy 1),
# ex2_selective 7 (biases 1, Xavier 2, others 1, identity output 1,
# in place 2).
EXPECTED = {
    "correct": 13,
    "blank": 0,
    "clips": 4 + 7,                  # only the redraw test fails
    "replaces_parameters": 6 + 5,    # only the in-place test fails
}
