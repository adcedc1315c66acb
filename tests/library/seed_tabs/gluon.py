"""The Gluon (MXNet) tab of section 5.1, run on d2lblocks.

Only the import lines differ from the seed, except the lines marked
``# edited:`` (the README lists these edits). The statements the seed runs
at the top level are wrapped in ``run_*`` functions that return the network,
its input and its output.
"""

import d2lblocks as np          # from mxnet import np, npx
import d2lblocks as npx
from d2lblocks import nn        # from mxnet.gluon import nn
# edited: npx.set_np() dropped; d2lblocks arrays behave like NumPy's already


def run_sequential():
    net = nn.Sequential()
    net.add(nn.Dense(256, activation='relu'))
    net.add(nn.Dense(10))
    net.initialize()
    X = np.random.uniform(size=(2, 20))
    return net, X, net(X)


class MLP(nn.Block):
    # two registered children, so their weights belong to the model
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = nn.Dense(256, activation='relu')
        self.out = nn.Dense(10)

    def forward(self, X):
        return self.out(self.hidden(X))


def run_mlp(X):
    net = MLP()
    net.initialize()
    return net, X, net(X)


class MySequential(nn.Block):
    def add(self, block):
        # registering by hand: the child's parameters become the net's
        self._children[block.name] = block

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X


def run_my_sequential(X):
    net = MySequential()
    net.add(nn.Dense(256, activation='relu'))
    net.add(nn.Dense(10))
    net.initialize()
    return net, X, net(X)


class FixedHiddenMLP(nn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # edited: self.rand_weight = self.params.get_constant(
        #     'rand_weight', np.random.uniform(size=(20, 20)))
        self.register_buffer('rand_weight', np.random.uniform(size=(20, 20)))
        self.dense = nn.Dense(20, activation='relu')

    def forward(self, X):
        X = self.dense(X)
        # edited: self.rand_weight.data() is self.rand_weight
        X = npx.relu(np.dot(X, self.rand_weight) + 1)
        # the same layer twice: one set of weights, used in two places
        X = self.dense(X)
        # ordinary Python control flow inside forward
        while np.abs(X).sum() > 1:
            X /= 2
        return X.sum()


def run_fixed_hidden_mlp(X):
    net = FixedHiddenMLP()
    net.initialize()
    return net, X, net(X)


class NestMLP(nn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.net = nn.Sequential()
        self.net.add(nn.Dense(64, activation='relu'),
                     nn.Dense(32, activation='relu'))
        self.dense = nn.Dense(16, activation='relu')

    def forward(self, X):
        return self.dense(self.net(X))


def run_chimera(X):
    chimera = nn.Sequential()
    chimera.add(NestMLP(), nn.Dense(20), FixedHiddenMLP())
    chimera.initialize()
    return chimera, X, chimera(X)
