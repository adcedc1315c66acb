"""Write the chapter notebooks of "Layers and Blocks" from the text below.

The notebooks are generated so that prose and code can be reviewed as
ordinary Python. Run ``python chapters/build_notebooks.py`` after editing;
a test checks that the committed ``.ipynb`` files equal what this writes.

Claims convention: a code cell made with ``code(..., expect=[...])`` stores
the listed strings in its metadata under ``"expect"``. After the notebook
runs, each string must appear in that cell's output, and it must also appear
in the markdown cell right above, so the prose and the output agree. Every
shape written in backticks in a markdown cell, such as `(2, 10)`, must be
expected by the code cell right below it.
"""

import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)",
              "language": "python"}

SETUP = """\
%matplotlib inline
import d2lblocks as db
from d2lblocks import nn, init, optim

db.manual_seed(0)   # the same numbers on every run"""


def md(text):
    """A markdown cell (leading and trailing blank lines are dropped)."""
    return ("markdown", text.strip("\n"), None)


def code(text, expect=None):
    """A code cell; ``expect`` lists strings its output must contain."""
    return ("code", text.strip("\n"), list(expect) if expect else None)


# ---------------------------------------------------------------------------
SEQUENTIAL = [
    md("""
# Layers and Blocks, part 1: a network made of blocks

A single neuron takes inputs, produces an output and owns a few parameters.
A layer does the same for many neurons at once, and a whole MLP does it
again at a larger scale: inputs go in, predictions come out, and the model
owns the parameters of all its layers.

Between "one layer" and "the whole model" there is a useful middle size.
Deep vision networks such as ResNet repeat the same group of layers dozens
of times; writing them one layer at a time would be tedious and error
prone. So we give a name to *any* piece of a network that maps inputs to
outputs and owns parameters: a **block**. A block may be one layer, a group
of layers, or the entire model, and blocks nest inside blocks.

In code a block is a class. It stores its parameters and says how to
compute its output in `forward`. The backward pass comes for free from
automatic differentiation, so we never write it by hand.

This first notebook builds the familiar MLP out of ready-made blocks and
looks inside it.
"""),
    code(SETUP),
    md("""
## An MLP in three lines

The network below has a hidden layer of 256 units with ReLU and an output
layer of 10 units. `nn.Sequential` runs its blocks one after another, each
feeding the next. We feed it a batch of 2 examples with 20 features, so the
output holds 10 numbers per example: its shape is `(2, 10)`.
"""),
    code("""
net = nn.Sequential(nn.Dense(256, activation='relu'), nn.Dense(10))

X = db.rand(2, 20)
Y = net(X)
print(Y.shape)
Y""", expect=["(2, 10)"]),
    md("""
### The same network in the three frameworks of the book

d2lblocks accepts the spellings of all three, so you can keep the habits you
came with. The cell below builds the PyTorch spelling in d2lblocks; it
gives a batch of the same shape `(2, 10)`.

| | d2lblocks | Gluon (MXNet) | PyTorch | Keras (TensorFlow) |
|---|---|---|---|---|
| base class | `nn.Block` (alias `nn.Module`) | `nn.Block` | `nn.Module` | `keras.Model` / `Layer` |
| dense layer | `nn.Dense(256, activation='relu')` or `nn.Linear(20, 256)` | `Dense(256, activation='relu')` | `Linear(20, 256)` then `ReLU()` | `Dense(256, activation='relu')` |
| input size | inferred on the first batch (`Dense`) or given (`Linear`) | inferred | given | inferred |
| building a chain | `Sequential(a, b)` or `Sequential().add(a, b)` | `Sequential()` then `add` | `Sequential(a, b)` | `Sequential([a, b])` |
| the forward method | `forward` (`call` also works) | `forward` | `forward` | `call` |
| creating weights | lazily, or `net.initialize()` | `net.initialize()` | in the constructor | on the first call |
"""),
    code("""
torch_style = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
print(torch_style(X).shape)""", expect=["(2, 10)"]),
    md("""
The only difference between the spellings is that `Linear` is told its
input size up front, while `Dense` waits for data.

## `net(X)` is `net.forward(X)`

Calling a block runs its `forward` method: `Block.__call__` forwards the
call (and does a little bookkeeping that `diagnose` uses later). The two
results are identical, so the cell prints
`net(X) equals net.forward(X): True`.
"""),
    code("""
same = (net(X) == net.forward(X)).all()
print('net(X) equals net.forward(X):', bool(same))""",
         expect=["net(X) equals net.forward(X): True"]),
    md("""
## Printing a network

`print(net)` shows the tree of blocks. Children of a `Sequential` are named
by position: `0`, `1`, and so on. After the first batch each `Dense` knows
its input size, so the tree reads `Dense(20 -> 256, activation=relu)`
followed by `Dense(256 -> 10)`: 20 features in, 256 hidden units, 10
outputs.
"""),
    code("print(net)", expect=["Dense(20 -> 256, activation=relu)",
                               "Dense(256 -> 10)"]),
    md("""
## Lazy initialization: shapes appear with the first batch

A fresh `Dense(256)` cannot know how many inputs it will get, so its weight
has a placeholder for the missing size. Before any data has flowed the
weight of the first layer has shape `(256, None)`.
"""),
    code("""
fresh = nn.Sequential(nn.Dense(256, activation='relu'), nn.Dense(10))
for name, param in fresh.named_parameters():
    print(f'{name:10s} {param.shape}')
print(fresh[0].weight)
try:
    fresh[0].weight.numpy()
except nn.UninitializedParameterError as err:
    print('reading it fails:', err)""", expect=["(256, None)"]),
    md("""
Reading its values fails with an error that says what to do. The shape is
filled in by the first forward pass. Afterwards the same weight has shape
`(256, 20)`.
"""),
    code("""
fresh(X)
for name, param in fresh.named_parameters():
    print(f'{name:10s} {param.shape}')""", expect=["(256, 20)"]),
    md("""
## Counting parameters

`named_parameters()` walks the whole tree and yields dotted names such as
`0.weight`. Adding up the sizes gives the model's parameter count:
256 x 20 + 256 + 10 x 256 + 10 = 7946 numbers, so the cell prints
`parameters: 7946`.
"""),
    code("""
total = sum(p.numel() for p in net.parameters())
print('parameters:', total)""", expect=["parameters: 7946"]),
    md("""
## Initializing on purpose

Gluon users call `net.initialize()`; here that call is optional, because
every layer has a sensible default. Passing an initializer changes all
weights at once, even lazy ones: they receive it when their shape becomes
known. With `init.Constant(0.5)` every entry of the first weight is 0.5, so
the cell prints `mean of 0.weight: 0.5`.
"""),
    code("""
net2 = nn.Sequential(nn.Dense(256, activation='relu'), nn.Dense(10))
net2.initialize(init.Constant(0.5))
net2(X)
print('mean of 0.weight:', net2[0].weight.mean().item())""",
         expect=["mean of 0.weight: 0.5"]),
    md("""
Next: writing a block of our own, in `02-custom-block.ipynb`.
"""),
]

# ---------------------------------------------------------------------------
CUSTOM = [
    md("""
# Layers and Blocks, part 2: a custom block

The quickest way to see what a block does is to write one. Every block
needs to:

1. take input data as the arguments of `forward`;
2. return an output from `forward`, whose shape may differ from the
   input's (our hidden layer turns 20 features into 256);
3. support the backward pass, which autograd handles for us;
4. own the parameters that `forward` uses and let others find them;
5. initialize those parameters.

We subclass `nn.Block` and supply two things only: a constructor that
creates the layers, and `forward`.
"""),
    code(SETUP),
    md("""
## The `MLP` block

`super().__init__()` must run first: it creates the registries where the
block records its children. Every block assigned to an attribute, such as
`self.hidden`, is registered automatically.
"""),
    code("""
class MLP(nn.Block):
    \"\"\"One hidden layer of 256 ReLU units, then 10 outputs.\"\"\"

    def __init__(self):
        super().__init__()
        self.hidden = nn.Dense(256, activation='relu')
        self.out = nn.Dense(10)

    def forward(self, X):
        return self.out(self.hidden(X))"""),
    md("""
Framework notes: in PyTorch the hidden layer would be `nn.Linear(20, 256)`
and `forward` would apply `F.relu` itself; in Keras the method is called
`call`, which d2lblocks also accepts. The layers live on the instance, not
on the class, so two `MLP` objects have separate weights and can be trained
on different data.

Running it on a batch of 2 examples gives an output of shape `(2, 10)`.
"""),
    code("""
X = db.rand(2, 20)
net = MLP()
print(net(X).shape)
print(net)""", expect=["(2, 10)"]),
    md("""
Two instances really are independent: their first weights differ, so this
prints `same weights: False`.
"""),
    code("""
net_a, net_b = MLP(), MLP()
net_a(X), net_b(X)
same = bool((net_a.hidden.weight == net_b.hidden.weight).all())
print('same weights:', same)""", expect=["same weights: False"]),
    md("""
## What the base class does for us

We never listed the parameters, yet `named_parameters()` finds all four,
because `hidden` and `out` were registered when they were
assigned: `parameter tensors: 4`.
"""),
    code("""
for name, param in net.named_parameters():
    print(f'{name:14s} {param.shape}')
print('parameter tensors:', len(net.parameters()))""",
         expect=["parameter tensors: 4"]),
    md("""
Gradients need no code either. After a backward pass every parameter has a
gradient of its own shape; the hidden weight's gradient has shape
`(256, 20)`.
"""),
    code("""
net(X).sum().backward()
print(net.hidden.weight.grad.shape)""", expect=["(256, 20)"]),
    md("""
## Watching the block learn

To see that those gradients are useful, we train the block on a toy task:
512 random points in 20 dimensions, each labelled by which of 10 hidden
directions it points along most. The training inputs have shape
`(512, 20)`.
"""),
    code("""
teacher = db.randn(20, 10)
X_train = db.randn(512, 20)
y_train = (X_train @ teacher).argmax(axis=1)
X_test = db.randn(256, 20)
y_test = (X_test @ teacher).argmax(axis=1)
print(X_train.shape)""", expect=["(512, 20)"]),
    code("""
model = MLP()
model(X_train)                      # lazy shapes are filled in here
before = model.out.weight.numpy().copy()

loss_fn = nn.CrossEntropyLoss()
trainer = optim.SGD(model.parameters(), lr=0.5)
losses = []
for step in range(300):
    loss = loss_fn(model(X_train), y_train)
    trainer.zero_grad()
    loss.backward()
    trainer.step()
    losses.append(loss.item())
after = model.out.weight.numpy()

with db.no_grad():
    hits = model(X_test).argmax(axis=1) == y_test
print(f'loss {losses[0]:.3f} -> {losses[-1]:.3f}')
print(f'test accuracy {hits.numpy().mean():.2f}')"""),
    md("""
The loss curve on the left shows learning as it happens. On the right, the
output weights start in the narrow band of the default initialization and
spread out as the block learns which directions matter.
"""),
    code("""
import matplotlib.pyplot as plt
import numpy as np

fig, (ax_loss, ax_hist) = plt.subplots(1, 2, figsize=(10, 3.5))
ax_loss.plot(losses)
ax_loss.set(xlabel='step', ylabel='training loss', yscale='log',
            title='MLP on the toy task')
bins = np.linspace(after.min(), after.max(), 61)   # shared by both
ax_hist.hist(after.ravel(), bins=bins, density=True, alpha=0.6,
             label='after training', color='tab:orange')
ax_hist.hist(before.ravel(), bins=bins, density=True, alpha=0.6,
             label='before training', color='tab:blue')
ax_hist.set(xlabel='value', ylabel='density', title='out.weight')
ax_hist.legend()
plt.tight_layout()
plt.show()"""),
    md("""
Blocks scale from a single layer (such as `Dense`) to a whole model (such
as `MLP`) and everything in between. Next we rebuild `Sequential` itself,
in `03-sequential-block.ipynb`.
"""),
]

# ---------------------------------------------------------------------------
MY_SEQUENTIAL = [
    md("""
# Layers and Blocks, part 3: the Sequential block

`Sequential` chains blocks. To write our own we need two things: a way to
store the blocks in order, and a `forward` that passes the input through
them in that order.

Every block has a dict `_children` where registered sub-blocks live (in
PyTorch it is called `_modules`, and d2lblocks understands that name too).
Python dicts keep the order in which keys were inserted, so iterating over
`_children.values()` visits the blocks in the order we added them.
"""),
    code(SETUP),
    code("""
class MySequential(nn.Block):
    \"\"\"Runs its blocks in the order they were given.\"\"\"

    def __init__(self, *blocks):
        super().__init__()
        self.add(*blocks)

    def add(self, *blocks):
        \"\"\"Append blocks (Gluon's style); returns self.\"\"\"
        for block in blocks:
            self._children[str(len(self._children))] = block
        return self

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X"""),
    md("""
Framework notes: Gluon appends with `add` and keys children by
`block.name`, PyTorch passes the blocks to the constructor and writes
`self._modules[str(idx)]`, Keras keeps a plain Python list (Keras tracks
list attributes itself). Our class supports both the constructor and `add`.

It behaves like the library's `Sequential`: the output has shape `(2, 10)`.
"""),
    code("""
X = db.rand(2, 20)
net = MySequential(nn.Dense(256, activation='relu'), nn.Dense(10))
print(net(X).shape)
print(net)""", expect=["(2, 10)"]),
    md("""
Because the children are registered, the parameters carry the children's
names: `0.weight`, `0.bias`, `1.weight`, `1.bias`. The first weight has
shape `(256, 20)`.
"""),
    code("""
for name, param in net.named_parameters():
    print(f'{name:10s} {param.shape}')""", expect=["(256, 20)"]),
    md("""
## Why not a plain Python list?

Keeping the blocks in a list looks simpler. Let us try it and see what
breaks.
"""),
    code("""
class ListSequential(nn.Block):
    \"\"\"The same chain, but the blocks sit in a plain list.\"\"\"

    def __init__(self, *blocks):
        super().__init__()
        self.blocks = list(blocks)

    def forward(self, X):
        for block in self.blocks:
            X = block(X)
        return X

list_net = ListSequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))"""),
    md("""
The forward pass still works and returns shape `(2, 10)`. But the block
cannot see its own layers: `print` shows an empty block, and the count
reads `parameters: 0`.
"""),
    code("""
print(list_net(X).shape)
print(list_net)
print('parameters:', len(list_net.parameters()))""",
         expect=["(2, 10)", "parameters: 0"]),
    md("""
Everything that walks the tree (`parameters()`, `initialize()`,
`state_dict()`, `save()`, `to(device)`) goes through `_children` and never
looks inside ordinary attributes. `db.diagnose` explains the problem and
names the fix. Its report begins with
`blocks kept in a plain Python container`.
"""),
    code("""
report = db.diagnose(list_net, warn=False)
print(report)""", expect=["blocks kept in a plain Python container"]),
    md("""
The practical damage: an optimizer built from `list_net.parameters()` would
have nothing to train, so the library refuses to build it
(`SGD got no parameters`), and
`initialize()` silently skips the hidden layers. With `init.Zeros()` the
registered chain's weights all become zero (`registered: 0.0`), while
the list-held weights keep their random values.
"""),
    code("""
try:
    optim.SGD(list_net.parameters(), lr=0.1)
except ValueError as err:
    print('SGD refused:', err)

registered = MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
registered.initialize(init.Zeros())
list_net.initialize(init.Zeros())
print('registered:', registered._children['0'].weight.abs().sum().item())
print('list-held: ', list_net.blocks[0].weight.abs().sum().item())""",
         expect=["SGD got no parameters", "registered: 0.0"]),
    md("""
## Why a dict rather than a list?

`_children` could have been a list of blocks. A dict keyed by name buys
three things:

* **Names.** Parameters are called `0.weight` or `hidden.bias`, so a
  saved model can be loaded back key by key, and errors can say which
  layer is wrong.
* **Attributes and registration are one thing.** `self.hidden = ...`
  stores the block under the key `hidden`; assigning again replaces it
  instead of adding a second copy.
* **Order still holds.** Since Python 3.7 a dict remembers insertion order,
  which is exactly the execution order a chain needs.

The keys of our chain are the positions, and the state dict uses them:
`entries: 4`.
"""),
    code("""
print(list(net._children))
print(list(net.state_dict()))
print('entries:', len(net.state_dict()))""", expect=["entries: 4"]),
    md("""
If you must keep blocks in a list, use `nn.BlockList` (PyTorch's
`ModuleList`): it is a list that registers what it holds, so all four
parameters are found again (`parameters: 4`).
"""),
    code("""
class BlockListSequential(ListSequential):
    \"\"\"The list version again, but with a list that registers.\"\"\"

    def __init__(self, *blocks):
        super().__init__(*blocks)
        self.blocks = nn.BlockList(self.blocks)

fixed = BlockListSequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
print('parameters:', len(fixed.parameters()))
print(db.diagnose(fixed, warn=False))""", expect=["parameters: 4"]),
    md("""
Next: putting arbitrary Python into `forward`, in
`04-forward-code.ipynb`.
"""),
]

# ---------------------------------------------------------------------------
FORWARD_CODE = [
    md("""
# Layers and Blocks, part 4: code in the forward pass

`Sequential` covers simple chains. Once `forward` is ours we can run any
Python in it: loops, conditions, calls to the same layer twice, and
arithmetic with tensors that are not learned at all.

A *constant parameter* is such a tensor: it takes part in the computation
but is never updated by the optimizer. Say we want
$f(\\mathbf{x}, \\mathbf{w}) = c \\cdot \\mathbf{w}^\\top \\mathbf{x}$ with
a fixed $c$; the block below carries a fixed random matrix instead.
"""),
    code(SETUP),
    md("""
## `FixedHiddenMLP`

This block (deliberately odd, no real model does this):

1. applies a learned layer `self.linear`;
2. multiplies by a constant random matrix, adds 1 and applies ReLU;
3. applies **the same** `self.linear` again, so the two uses share weights;
4. halves the result in a `while` loop until its absolute values sum to at
   most 1;
5. returns the sum, a scalar.

The constant is stored with `register_buffer`: it follows the block in
`to(device)` and `state_dict()`, but it is not a parameter, so no gradient
and no update ever touch it.

Framework notes: Gluon spells the constant `self.params.get_constant(...)`,
PyTorch `torch.rand(..., requires_grad=False)` (or `register_buffer`),
Keras `tf.constant(...)`.
"""),
    code("""
class FixedHiddenMLP(nn.Block):
    \"\"\"A block with a constant weight, a reused layer and a loop.\"\"\"

    def __init__(self):
        super().__init__()
        self.register_buffer('rand_weight', db.rand(20, 20))
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = db.relu(X @ self.rand_weight + 1)
        X = self.linear(X)          # the same weights a second time
        while X.abs().sum() > 1:    # ordinary Python control flow
            X /= 2
        return X.sum()"""),
    md("""
The output is a single number, so its shape is the empty tuple `()`.
"""),
    code("""
X = db.rand(2, 20)
net = FixedHiddenMLP()
out = net(X)
print(out.shape)
out""", expect=["()"]),
    md("""
Only the layer's weight and bias are parameters; the constant matrix shows
up among the buffers instead. Backpropagation goes through the loop and
both uses of the layer; the weight's gradient sums both uses and has shape
`(20, 20)`.
"""),
    code("""
print('parameters:', [name for name, _ in net.named_parameters()])
print('buffers:   ', [name for name, _ in net.named_buffers()])
out.backward()
print(net.linear.weight.grad.shape)
print('constant has a gradient:', net.rand_weight.grad is not None)""",
         expect=["(20, 20)"]),
    md("""
What if we had written `self.rand_weight = db.rand(20, 20)` instead of
registering it? The forward pass would work, but the tensor would be left
behind by `to(device)` and missing from `state_dict()`. `diagnose` notices
and reports `arrays stored as plain attributes`.
"""),
    code("""
class SloppyFixedHiddenMLP(FixedHiddenMLP):
    def __init__(self):
        super().__init__()
        del self.rand_weight
        self.rand_weight = db.rand(20, 20)   # a plain attribute now

sloppy = SloppyFixedHiddenMLP()
sloppy(X)
print(db.diagnose(sloppy, warn=False))""",
         expect=["arrays stored as plain attributes"]),
    md("""
## The loop depends on the data

The number of halvings is decided by Python at run time, separately for
every input. Scaling the input up makes the loop run more often; the
numbers of halvings for inputs scaled by 1, 10 and 100 are printed below.
Keep this in mind for the efficiency notebook.
"""),
    code("""
def count_halvings(block, X):
    \"\"\"How many times the while loop of FixedHiddenMLP runs for X.\"\"\"
    Z = block.linear(X)
    Z = db.relu(Z @ block.rand_weight + 1)
    Z = block.linear(Z)
    n = 0
    while Z.abs().sum() > 1:
        Z = Z / 2
        n += 1
    return n

for scale in (1, 10, 100):
    print(scale, count_halvings(net, X * scale))"""),
    md("""
## Nesting blocks: `NestMLP` and the chimera

Blocks mix freely. `NestMLP` holds a `Sequential` inside itself, and the
`chimera` chains a `NestMLP`, a plain layer and a `FixedHiddenMLP`. The
result is again a scalar, of shape `()`.
"""),
    code("""
class NestMLP(nn.Block):
    \"\"\"A Sequential inside a custom block.\"\"\"

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))

chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP())
print(chimera(X).shape)""", expect=["()"]),
    md("""
Framework notes: Gluon and Keras would write `Dense(64, activation='relu')`
without input sizes; in d2lblocks `nn.Dense(64, activation='relu')` works
the same way.

The printed tree shows the nesting, and the parameter names follow it
(`0.net.0.weight` is the first layer inside the `NestMLP`). The chimera
owns 4712 numbers in all: `total: 4712`.
"""),
    code("""
print(chimera)
for name, param in chimera.named_parameters():
    print(f'{name:18s} {param.shape}')
print('total:', sum(p.numel() for p in chimera.parameters()))""",
         expect=["total: 4712"]),
    md("""
Next: how fast is all this Python, in `05-efficiency.ipynb`.
"""),
]

# ---------------------------------------------------------------------------
EFFICIENCY = [
    md("""
# Layers and Blocks, part 5: efficiency

Every call of a block runs Python: an attribute lookup, a walk over
`_children`, a few checks, and an autograd record per operation. When the
arrays are large, that cost vanishes next to the matrix products. When they
are small, Python *is* the cost. Rather than argue, we measure.

The timings below depend on your machine and vary from run to run; read
them as shapes of curves, not as exact numbers.
"""),
    code(SETUP),
    md("""
## How we measure

We repeat a call for about 20 ms and keep the best of seven such rounds,
letting the contenders take turns; this filters out most interference from
the rest of the machine. The matrix library is kept on a single thread: on a small, busy
machine its worker threads can wait on each other for longer than the
arithmetic takes, and we want to time our code, not that. The network is the chapter's MLP with 20 inputs; its output for a
batch of 8 has shape `(8, 10)`.
"""),
    code("""
import contextlib
import time
import numpy as np

try:
    from threadpoolctl import threadpool_limits
except ImportError:           # timings get noisier, nothing else changes
    threadpool_limits = None

def one_blas_thread():
    \"\"\"Keep the matrix library on one thread while we time it.\"\"\"
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api='blas')

def best_times(fns, budget=0.02, rounds=7):
    \"\"\"Best mean seconds per call of each function in ``fns``.

    Each function is repeated for about ``budget`` seconds per round, and
    the functions take turns, so a busy moment hurts all of them alike.
    \"\"\"
    counts = []
    for fn in fns:
        fn()                                   # warm up
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < budget:
            fn()
            n += 1
        counts.append(n)
    best = [float('inf')] * len(fns)
    for _ in range(rounds):
        for i, (fn, n) in enumerate(zip(fns, counts)):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / n)
    return best

net = nn.Sequential(nn.Dense(256, activation='relu'), nn.Dense(10))
print(net(db.rand(8, 20)).shape)""", expect=["(8, 10)"]),
    md("""
## Forward, forward + backward, and plain NumPy

For each batch size we time three things:

* `net(X)` inside `db.no_grad()` (no graph is recorded);
* a forward pass, a loss and `backward()`, as in training;
* the same forward computation written directly in NumPy, which has no
  blocks and no autograd: the floor that Python-free code could reach.
"""),
    code("""
W1, b1 = net[0].weight.numpy(), net[0].bias.numpy()
W2, b2 = net[1].weight.numpy(), net[1].bias.numpy()

def numpy_forward(A):
    return np.maximum(A @ W1.T + b1, 0) @ W2.T + b2

def train_step(X):
    net.zero_grad()
    net(X).sum().backward()

def forward_only(X):
    with db.no_grad():
        net(X)

batch_sizes = [4 ** k for k in range(8)]     # 1 ... 16384
rows = []
with one_blas_thread():
    for b in batch_sizes:
        X = db.rand(b, 20)
        A = X.numpy()
        rows.append((b, *best_times([lambda: forward_only(X),
                                     lambda: train_step(X),
                                     lambda: numpy_forward(A)])))

print(f'{"batch":>6} {"forward":>12} {"fwd+bwd":>12} {"numpy fwd":>12}')
for b, fwd, step, raw in rows:
    print(f'{b:6d} {fwd * 1e6:10.1f}us {step * 1e6:10.1f}us '
          f'{raw * 1e6:10.1f}us')"""),
    md("""
Dividing by the batch size gives the time per example. On a log-log plot,
a line falling with slope -1 means "a fixed cost per call, shared by more
examples"; a flat line means "cost proportional to the work". The dashed
line is the arithmetic alone: the forward pass needs
2 x (20 x 256 + 256 x 10) floating-point operations per example, done at
the best rate NumPy reached in the table above.
"""),
    code("""
import matplotlib.pyplot as plt

flops = 2 * (20 * 256 + 256 * 10)        # per example, forward pass
best_rate = max(flops * b / raw for b, _, _, raw in rows)
floor_us = flops / best_rate * 1e6

sizes = np.array([r[0] for r in rows])
per_sample = {name: np.array([r[i] for r in rows]) / sizes * 1e6
              for i, name in [(1, 'forward (d2lblocks)'),
                              (2, 'forward + backward (d2lblocks)'),
                              (3, 'forward (plain NumPy)')]}
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, values in per_sample.items():
    ax.plot(sizes, values, marker='o', label=name)
ax.axhline(floor_us, color='gray', linestyle='--',
           label='arithmetic only (forward)')
ax.set(xscale='log', yscale='log', xlabel='batch size',
       ylabel='microseconds per example',
       title='Time per example falls until the arithmetic dominates')
ax.legend()
plt.show()"""),
    md("""
## Where Python overhead dominates

At batch size 1 the arithmetic takes a small fraction of a microsecond,
yet a forward call takes several microseconds, even in plain NumPy: the
time goes to Python deciding what to do, calling a handful of NumPy
functions, and allocating tiny arrays. d2lblocks adds its own share on
top: walking `_children`, checking shapes, and recording the graph for
`backward`, which is why the training step costs most per call.

As the batch grows, that fixed cost is shared by more examples, so the
curves fall with slope -1 until they approach the dashed line; from there on
the matrix products dominate and the curves flatten. Bumps are common there:
once the activations outgrow a processor cache, memory becomes the limit,
and timings on a busy machine vary. The cell below
puts numbers on this: how far above the arithmetic floor each batch size
is, and how much of a forward call d2lblocks itself adds over NumPy.
"""),
    code("""
print(f'fixed cost of a forward call: about {rows[0][1] * 1e6:.1f} us, '
      f'of which d2lblocks adds {max(rows[0][1] - rows[0][3], 0) * 1e6:.1f} us')
print(f'{"batch":>6} {"x arithmetic floor":>19} {"d2lblocks share":>16}')
for b, fwd, _, raw in rows:
    share = max(fwd - raw, 0) / fwd
    print(f'{b:6d} {fwd / b * 1e6 / floor_us:19.1f} {share:16.0%}')"""),
    md("""
This is why frameworks process data in batches, and why they try to move
the Python out of the loop altogether.

## Record and replay (`hybridize`), and its caveat

Gluon's `net.hybridize()` and PyTorch's `torch.jit.trace` run the Python
code once, record the operations it performed, and afterwards replay the
recording without Python. d2lblocks has no such mode yet; it is left for a
later chapter. We can still see its main caveat by hand.

A recording holds the operations that *one* run performed. The `while` loop
of `FixedHiddenMLP` ran a number of times that depended on its input; a
recording made with one input bakes that number in. The imitation below
records the number of halvings on the first call and replays it on later
calls, as a tracer would.
"""),
    code("""
class FixedHiddenMLP(nn.Block):
    \"\"\"The block of part 4: a constant weight, a reused layer, a loop.\"\"\"

    def __init__(self):
        super().__init__()
        self.register_buffer('rand_weight', db.rand(20, 20))
        self.linear = nn.Linear(20, 20)

    def hidden(self, X):
        X = self.linear(X)
        return self.linear(db.relu(X @ self.rand_weight + 1))

    def forward(self, X):
        X = self.hidden(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class ReplayedFixedHiddenMLP(FixedHiddenMLP):
    \"\"\"Imitates a recording: the loop count of the first call is reused.\"\"\"

    recorded_halvings = None

    def forward(self, X):
        X = self.hidden(X)
        if self.recorded_halvings is None:      # the recording run
            n = 0
            while X.abs().sum() > 1:
                X /= 2
                n += 1
            self.recorded_halvings = n
        else:                                   # replay: no Python decisions
            X = X / 2 ** self.recorded_halvings
        return X.sum()"""),
    md("""
Both blocks get the same weights. On the input used for recording they
agree; on an input 100 times larger the eager block halves more often while
the replay repeats the old count, so the last line reads
`replay matches eager: False`.
"""),
    code("""
eager = FixedHiddenMLP()
replayed = ReplayedFixedHiddenMLP()
replayed.load_state_dict(eager.state_dict())

X = db.rand(2, 20)
with db.no_grad():
    print('recording input:', eager(X).item(), replayed(X).item())
    big = X * 100
    e, r = eager(big).item(), replayed(big).item()
print('input x 100:    ', e, r)
print('replay matches eager:', bool(np.isclose(e, r)))""",
         expect=["replay matches eager: False"]),
    md("""
Real tracers behave the same way unless the framework offers special
control-flow operators (such as `while_loop`) that are recorded as one
operation. Data-dependent Python `while` and `if` are exactly what a
recording cannot capture.

Next: the summary and the exercises, in `06-summary-and-exercises.ipynb`.
"""),
]

# ---------------------------------------------------------------------------
SUMMARY = [
    md("""
# Layers and Blocks, part 6: summary and exercises

* A layer is a block, and so is a group of layers or a whole model.
* Blocks nest: a block's children are blocks, found through `_children`.
* `forward` is ordinary Python: loops, conditions, reused layers and
  constants (registered with `register_buffer`) are all allowed.
* The base class does the housekeeping: registration, `parameters()`,
  initialization (lazy when input sizes are unknown), saving, and the
  backward pass through autograd.
* `Sequential` chains blocks in the order they were added. Keep blocks in
  registered containers (`Sequential`, `BlockList`, `BlockDict`), never in a
  plain list; `db.diagnose(net)` tells you when you forgot.
* Python costs a fixed amount per call, which batching hides; recording a
  network to skip Python freezes data-dependent control flow.
"""),
    code(SETUP),
    md("""
## One last check

Everything in one small network: a custom block, a `Sequential` inside it,
a buffer and a reused layer. `diagnose` finds nothing to complain about and
ends with `no problems found`.
"""),
    code("""
class Review(nn.Block):
    \"\"\"A little of everything from this chapter.\"\"\"

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Dense(32, activation='relu'),
                                  nn.Dense(32, activation='relu'))
        self.register_buffer('scale', db.tensor(0.5))
        self.head = nn.Dense(10)

    def forward(self, X):
        H = self.body(X) * self.scale
        return self.head(H)

review = Review()
review(db.rand(4, 20))
print(review)
print(db.diagnose(review, warn=False))""", expect=["no problems found"]),
    md("""
## Exercises

The exercises for this section are the nbgrader assignment
`layers_and_blocks` in the folder `exercises/` at the top of the
repository; `exercises/README.md` explains how a course releases,
collects and grades them. Each exercise is a notebook with tests you can
run yourself before you submit:

| notebook | what you build |
|---|---|
| `ex1_sequential.ipynb` | `MySequential` with an ordered dict of children, and an account of what goes wrong when the blocks sit in a Python list |
| `ex2_parallel.ipynb` | `Parallel(net1, net2, axis=1)`: run two blocks on the same input and join their outputs |
| `ex3_factory.ipynb` | a factory that makes several independent copies of a block and chains them into a larger network |

Parts 3 and 4 of this chapter, and `db.diagnose`, are the tools you need.
"""),
]

NOTEBOOKS = {
    "01-sequential.ipynb": SEQUENTIAL,
    "02-custom-block.ipynb": CUSTOM,
    "03-sequential-block.ipynb": MY_SEQUENTIAL,
    "04-forward-code.ipynb": FORWARD_CODE,
    "05-efficiency.ipynb": EFFICIENCY,
    "06-summary-and-exercises.ipynb": SUMMARY,
}


def make_notebook(stem, cells):
    """An nbformat notebook with stable cell ids and minimal metadata."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC),
                   "language_info": {"name": "python"}}
    for i, (kind, text, expect) in enumerate(cells):
        cell_id = f"{stem[:2]}-{i:02d}"
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text, id=cell_id)
        else:
            cell = nbformat.v4.new_code_cell(text, id=cell_id)
            if expect:
                cell.metadata["expect"] = expect
        nb.cells.append(cell)
    return nb


def build():
    """Map each notebook file name to its text, as it should be committed."""
    return {name: nbformat.writes(make_notebook(name, cells)) + "\n"
            for name, cells in NOTEBOOKS.items()}


def main(argv):
    """Write the notebooks, or with ``--check`` report stale ones."""
    check = "--check" in argv
    stale = []
    for name, text in build().items():
        path = HERE / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        print("out of date (run chapters/build_notebooks.py):", *stale)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
