"""Helpers shared by the hybridize tests."""

import d2lblocks as db


def training_step(net, opt, returns_loss=True):
    """The usual step on (X, y): forward, cross-entropy, backward, update.
    It returns the loss, or nothing (then a replay skips computing it)."""
    def step(X, y):
        opt.zero_grad()
        loss = db.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss if returns_loss else None
    return step
