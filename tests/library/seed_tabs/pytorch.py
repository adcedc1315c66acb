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
    # two registered children, so their weights belong to the model
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        # F.relu: the activation as a plain function, no child block
        return self.out(F.relu(self.hidden(X)))


def run_mlp(X):
    net = MLP()
    return net, X, net(X)


class MySequential(nn.Module):
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            # writing into the registry by hand registers the child too
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
        # a plain tensor, not a Parameter: no optimizer will change it
        self.rand_weight = torch.rand((20, 20), requires_grad=False)
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        # the constant joins the computation like any other tensor
        X = F.relu(torch.mm(X, self.rand_weight) + 1)
        # the same layer twice: one set of weights, used in two places
        X = self.linear(X)
        # ordinary Python control flow inside forward
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
