"""Sample submissions of ``file_io`` (format: see ``samples.py``).

Typical bugs: a loader that goes through Python lists and so loses the
dtypes, a restore that loads with ``strict=False`` and so accepts a file
with other names, and a transfer that loads the chosen entries strictly,
so that every parameter left out counts as missing.
"""

# tolist() turns every array into Python numbers: float64 comes back as
# float32 (the default for Python floats), int32 as int64.
LOSES_DTYPE = '''
def tensors_to_bytes(tensors):
    for name, value in tensors.items():
        if not isinstance(value, db.Tensor):
            raise TypeError(f"{name} is not a tensor")
    buffer = io.BytesIO()
    np.savez(buffer, **{name: t.numpy() for name, t in tensors.items()})
    return buffer.getvalue()


def tensors_from_bytes(data):
    archive = np.load(io.BytesIO(data))
    return {name: db.tensor(archive[name].tolist()) for name in archive.files}


def save_tensors(path, tensors):
    with open(path, "wb") as f:
        f.write(tensors_to_bytes(tensors))


def load_tensors(path):
    with open(path, "rb") as f:
        return tensors_from_bytes(f.read())
'''

# Loads whatever fits: other names are silently skipped.
STRICT_FALSE = '''
def checkpoint(net, path):
    net.save(path)


def restore(make_net, path):
    net = make_net()
    net.load(path, strict=False)
    return net
'''

# Loads only the chosen entries, but strictly: every other parameter of
# the network is reported missing.
TRANSFER_STRICT = '''
def transfer(path, net, prefix):
    with np.load(path) as archive:
        chosen = {name: archive[name] for name in archive.files
                  if name.startswith(prefix)}
    if not chosen:
        raise ValueError(f"no parameter in {path} starts with {prefix}")
    net.load_state_dict(chosen)
    return list(chosen)
'''

WRITTEN = {"saved_file_answer": """
Only the arrays are in the file, one per parameter name, so I can see
which layers have weights, how big they are and their values. The file
does not say what forward does, e.g. where the ReLU is, so I need the
class (the code) to build the network again and then load the numbers.
A benefit: if I change my code later the old checkpoints still load, and
opening the file cannot run code the way a pickle can.
"""}

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "loses_dtype": {"base": "correct", "cells": {"tensor_files": LOSES_DTYPE}},
    "strict_false": {"base": "correct", "cells": {"restore": STRICT_FALSE}},
    "transfer_strict": {"base": "correct",
                        "cells": {"transfer": TRANSFER_STRICT}},
}
"""student id -> how that student's notebooks differ from the base."""

EXPECTED = {
    "correct": 14,
    "blank": 0,
    "loses_dtype": 10,      # fails the reading and the round-trip tests
    "strict_false": 12,     # fails the test of a file that does not fit
    "transfer_strict": 12,  # fails the transfer test, keeps "no match"
}
"""student id -> total automatic score (out of 14; the written answer,
2 points, is graded by hand)."""
