"""The Keras (TensorFlow) tab of section 5.1, in d2lblocks' spelling.

Keras's idioms map one to one: ``call`` as the forward method,
``Dense(units, activation=...)`` with lazy input size, ``Sequential([...])``
and ``add``. TensorFlow's functions take d2lblocks' names (``tf.matmul`` ->
``db.matmul``, ``tf.reduce_sum`` -> ``db.sum``, ``tf.nn.relu`` ->
``db.relu``). One idiom does not map, as the README says: Keras tracks the
layers in a list attribute, d2lblocks (like PyTorch) does not, so the seed's
``MySequential`` runs but registers nothing.
"""

import d2lblocks as db            # import tensorflow as tf
from d2lblocks import nn          # tf.keras.layers, tf.keras.Model


def run_sequential():
    net = nn.Sequential([
        nn.Dense(256, activation=db.relu),
        nn.Dense(10),
    ])
    X = db.rand(2, 20)
    return net, X, net(X)


class MLP(nn.Block):                # tf.keras.Model
    def __init__(self):
        super().__init__()
        self.hidden = nn.Dense(units=256, activation=db.relu)
        self.out = nn.Dense(units=10)

    def call(self, X):
        return self.out(self.hidden((X)))


def run_mlp(X):
    net = MLP()
    return net, X, net(X)


class MySequential(nn.Block):
    def __init__(self, *args):
        super().__init__()
        self.modules = []
        for block in args:
            self.modules.append(block)

    def call(self, X):
        for module in self.modules:
            X = module(X)
        return X


def run_my_sequential(X):
    net = MySequential(
        nn.Dense(units=256, activation=db.relu),
        nn.Dense(10))
    return net, X, net(X)


class FixedHiddenMLP(nn.Block):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        # a plain tensor, not a Parameter: no optimizer will change it
        self.rand_weight = db.rand(20, 20)
        self.dense = nn.Dense(20, activation=db.relu)

    def call(self, inputs):
        X = self.flatten(inputs)
        X = db.relu(db.matmul(X, self.rand_weight) + 1)
        # the same layer twice: one set of weights, used in two places
        X = self.dense(X)
        # ordinary Python control flow inside forward
        while db.sum(db.abs(X)) > 1:
            X /= 2
        return db.sum(X)


def run_fixed_hidden_mlp(X):
    net = FixedHiddenMLP()
    return net, X, net(X)


class NestMLP(nn.Block):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential()
        self.net.add(nn.Dense(64, activation=db.relu))
        self.net.add(nn.Dense(32, activation=db.relu))
        self.dense = nn.Dense(16, activation=db.relu)

    def call(self, inputs):
        return self.dense(self.net(inputs))


def run_chimera(X):
    chimera = nn.Sequential()
    chimera.add(NestMLP())
    chimera.add(nn.Dense(20))
    chimera.add(FixedHiddenMLP())
    return chimera, X, chimera(X)
