"""The PyTorch tab of section 5.1, run on d2lblocks.

Only the import lines differ from the seed. The statements the seed runs at
the top level are wrapped in ``run_*`` functions that return the network,
its input and its output.
"""

import d2lblocks as torch                   # import torch
from d2lblocks import nn                    # from torch import nn
from d2lblocks.nn import functional as F    # from torch.nn import functional as F


def run_sequential():
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    X = torch.rand(2, 20)
    return net, X, net(X)


class MLP(nn.Module):
    # Declare a layer with model parameters. Here, we declare two fully
    # connected layers
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)  # Hidden layer
        self.out = nn.Linear(256, 10)  # Output layer

    def forward(self, X):
        # The functional version of ReLU from nn.functional
        return self.out(F.relu(self.hidden(X)))


def run_mlp(X):
    net = MLP()
    return net, X, net(X)


class MySequential(nn.Module):
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            # Keep each module in the ordered dict `_modules`
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


def run_my_sequential(X):
    net = MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    return net, X, net(X)


class FixedHiddenMLP(nn.Module):
    def __init__(self):
        super().__init__()
        # Random weight parameters that will not compute gradients and
        # therefore keep constant during training
        self.rand_weight = torch.rand((20, 20), requires_grad=False)
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        # Use the created constant parameters, as well as the `relu` and `mm`
        # functions
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        # Reuse the fully-connected layer: shared parameters
        X = self.linear(X)
        # Control flow
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


def run_fixed_hidden_mlp(X):
    net = FixedHiddenMLP()
    return net, X, net(X)


class NestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


def run_chimera(X):
    chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
    return chimera, X, chimera(X)
