"""Sample submissions of ``lazy_initialization`` (format: see samples.py)."""

# A ReLU after the last layer too: the outputs can never be negative.
RELU_ON_LAST = '''
def lazy_mlp(widths):
    if not widths:
        raise ValueError("no widths")
    return nn.Sequential(*[nn.Dense(w, activation="relu") for w in widths])
'''

# Reads every parameter's values to count them: fails on a lazy one.
TOUCHES_VALUES = '''
def describe(net):
    lines = []
    for name, p in net.named_parameters():
        size = p.numpy().size
        shape = str(tuple(p.shape)).replace("None", "?")
        lines.append(f"{name} {shape} {size}")
    return lines
'''

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "relu_on_last": {"base": "correct",
                     "cells": {"lazy_mlp_function": RELU_ON_LAST}},
    "touches_values": {"base": "correct",
                       "cells": {"describe_function": TOUCHES_VALUES}},
}

# Test points: ex1_lazy_mlp 6 (before 2, after 2, activation 1, bad
# widths 1), ex2_too_early 6 (describe lazy 2, describe created 1,
# materialize shapes 2, materialize init 1).
EXPECTED = {
    "correct": 12,
    "blank": 0,
    "relu_on_last": 5 + 6,
    # both describe tests meet a lazy parameter (the second in its hidden part)
    "touches_values": 6 + 3,
}
