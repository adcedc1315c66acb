"""A short end-to-end run of the library: ``python -m d2lblocks.demo``.

Builds the chapter's MLP, trains it for a few steps on a synthetic
three-class problem, prints the loss falling and the accuracy, and shows what
``diagnose`` says about a network that keeps its layers in a plain list.
"""

import numpy as np

import d2lblocks as db
from d2lblocks import nn, optim


def make_blobs(n_per_class=200, n_features=20, seed=0):
    """Three Gaussian clusters in ``n_features`` dimensions."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 0.5, (3, n_features))
    X = np.concatenate([c + rng.normal(0, 1.0, (n_per_class, n_features)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order]


def train(steps=40, batch=32, lr=0.05, seed=0):
    """Train the MLP; returns the network and the loss after each step."""
    db.manual_seed(seed)
    X, y = make_blobs(seed=seed)
    net = nn.Sequential(nn.Dense(256, activation="relu"), nn.Dense(3))
    net.initialize()
    net(db.tensor(X[:1]))                 # the first batch fixes the shapes
    opt = optim.SGD(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(y), batch, replace=False)
        loss = db.cross_entropy(net(db.tensor(X[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with db.no_grad():
        accuracy = float((net(db.tensor(X)).argmax(axis=1).numpy() == y).mean())
    return net, losses, accuracy


class ListMLP(nn.Block):
    """The pitfall: layers in a plain list run, but are never registered."""

    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3)]

    def forward(self, X):
        for layer in self.layers:
            X = layer(X)
        return X


def main():
    net, losses, accuracy = train()
    print(net)
    print("\nparameters:", ", ".join(f"{n} {tuple(p.shape)}" for n, p in net.named_parameters()))
    print("\nloss every 5 steps:", " ".join(f"{l:.3f}" for l in losses[::5]))
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; training accuracy {accuracy:.1%}")
    listed = ListMLP()
    listed(db.rand(2, 20))
    print(f"\nListMLP has {len(list(listed.parameters()))} registered parameters:")
    print(db.diagnose(listed))


if __name__ == "__main__":
    main()
