"""Sample submissions of ``devices`` (format: see ``samples.py``).

Typical bugs: data moved to the network's device but not cast to its
dtype, a placement that forgets the buffers, a training step that returns
the loss tensor instead of a number, and one that never clears the
gradients of the previous step.
"""

# Moves every tensor to the right device but keeps its dtype.
DEVICE_ONLY = '''
def to_model(net, *tensors):
    params = list(net.parameters())
    if not params:
        raise ValueError("the network has no parameters")
    return tuple(t.to(params[0].device) for t in tensors)
'''

# Lists the parameters only.
PARAMETERS_ONLY = '''
def placement(net):
    return {name: "lazy" if p.is_lazy else str(p.device)
            for name, p in net.named_parameters()}
'''

# Returns the loss tensor itself.
RETURNS_TENSOR = '''
def train_step(net, X, y, lr=0.1):
    device = next(iter(net.parameters())).device
    X, y = X.to(device), y.to(device)
    loss = ((net(X) - y) ** 2).mean()
    net.zero_grad()
    loss.backward()
    with db.no_grad():
        for p in net.parameters():
            p -= lr * p.grad
    return loss
'''

# Never clears the gradients: from the second step on, each update adds
# the gradients of all earlier steps.
NO_ZERO_GRAD = '''
def train_step(net, X, y, lr=0.1):
    device = next(iter(net.parameters())).device
    X, y = X.to(device), y.to(device)
    loss = ((net(X) - y) ** 2).mean()
    loss.backward()
    with db.no_grad():
        for p in net.parameters():
            p -= lr * p.grad
    return loss.item()
'''

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "device_only": {"base": "correct", "cells": {"to_model": DEVICE_ONLY}},
    "parameters_only": {"base": "correct",
                        "cells": {"placement": PARAMETERS_ONLY}},
    "returns_tensor": {"base": "correct",
                       "cells": {"train_step": RETURNS_TENSOR}},
    "no_zero_grad": {"base": "correct", "cells": {"train_step": NO_ZERO_GRAD}},
}
"""student id -> how that student's notebooks differ from the base."""

EXPECTED = {
    "correct": 16,
    "blank": 0,
    "device_only": 13,      # the dtype and the labels tests
    "parameters_only": 14,  # the names test (buffers are missing)
    "returns_tensor": 14,   # the loss test (not a float)
    "no_zero_grad": 14,     # the repeated-steps test
}
"""student id -> total automatic score (out of 16)."""
