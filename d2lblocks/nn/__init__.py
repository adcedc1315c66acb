"""Blocks: ``from d2lblocks import nn``.

A block is a layer, a group of layers or a whole model. Subclass
``nn.Block`` (alias ``nn.Module``), assign layers as attributes in
``__init__``, and write ``forward``; autograd provides the backward pass.
"""

from .parameter import Parameter, UninitializedParameterError
from .block import Block, Module, IncompatibleKeys, StateDictKeyError
from .containers import Sequential, BlockList, BlockDict, ModuleList, ModuleDict
from .layers import (Dense, Linear, LazyLinear, ReLU, Sigmoid, Tanh, Softmax,
                     LogSoftmax, Identity, Flatten, Dropout, CrossEntropyLoss,
                     MSELoss)
from . import functional
from .display import block_html

# What Jupyter shows for a block at the end of a cell. It is attached here,
# where every module is loaded, because the view names the blocks that
# diagnose() finds, and diagnose reads nn.block: a method in block.py that
# imported the view would make the modules import each other.
Block._repr_html_ = block_html

__all__ = ["Parameter", "UninitializedParameterError", "Block", "Module",
           "IncompatibleKeys", "StateDictKeyError",
           "Sequential", "BlockList", "BlockDict", "ModuleList", "ModuleDict",
           "Dense", "Linear", "LazyLinear", "ReLU", "Sigmoid", "Tanh",
           "Softmax", "LogSoftmax", "Identity", "Flatten", "Dropout", "CrossEntropyLoss",
           "MSELoss", "functional"]
