"""Sample submissions of ``parameter_management`` (format: see samples.py)."""

# Two separate middle layers instead of one shared layer: nothing is tied.
SEPARATE_LAYERS = '''
def build_tied(in_features, hidden, out_features):
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out_features))
'''

# Counts a shared parameter once per name that reaches it.
COUNTS_EVERY_NAME = '''
def count_parameters(net):
    return sum(p.numel() for _, p in net.named_parameters(remove_duplicate=False))
'''

# The norm of the parameter's values instead of its gradient's.
NORM_OF_VALUES = '''
def print_parameter_table(net):
    for name, p in net.named_parameters():
        shape = str(tuple(p.shape)).replace(" ", "")
        norm = "-" if p.grad is None else f"{float(np.linalg.norm(p.numpy())):.4f}"
        print(name, shape, norm)
'''

WRITTEN = {"tied_answer": """
The shared weight is used twice, so the loss depends on it through both
layers and backward adds the two contributions. After a step the twin's
two layers are different from each other, but the tied weight moved by
the sum of both gradients.
"""}

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "separate_layers": {"base": "correct",
                        "cells": {"tied_network": SEPARATE_LAYERS}},
    "counts_every_name": {"base": "correct",
                          "cells": {"count_function": COUNTS_EVERY_NAME}},
    "norm_of_values": {"base": "correct",
                       "cells": {"table_function": NORM_OF_VALUES}},
}

# Test points: ex1_tied 9 (shape 1, shared 2, listed once 2, twin output 1,
# twin independent 1, twin gradient 2), ex2_inspect 7 (count 1, shared
# count 2, table lines 2, table norms 2). The written answer waits.
EXPECTED = {
    "correct": 16,
    "blank": 0,
    # only the shape test passes: the twin of an untied network neither
    # computes the same nor finds a shared weight
    "separate_layers": 1 + 7,
    "counts_every_name": 9 + 5,
    "norm_of_values": 9 + 5,
}
