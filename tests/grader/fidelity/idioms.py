"""A course of ordinary test idioms, each with a right and a wrong answer.

Every case is one answer cell and one test cell written the way nbgrader
courses write them. ``build(folder)`` writes an nbgrader course with one
notebook per kind and two submissions: ``right`` (the solutions) and
``wrong`` (an answer that must not earn the point). Stock ``nbgrader
autograde`` is the oracle; ``tests/grader/test_fidelity.py`` compares.
"""

from pathlib import Path

import nbformat

ASSIGNMENT = "idioms"

# One notebook per kind: its first cell (the instructor's imports) and its
# cases: (name, answer, wrong answer, test[, extra cells before the test]).
KINDS = {}

KINDS["names"] = ("import io\nimport unittest.mock as mock", [
    ("del_helper", '''
def square_all(xs):
    return [x * x for x in xs]

def sum_of_squares(xs):
    return sum(square_all(xs))
''', '''
def square_all(xs):
    return [x * x for x in xs]

def sum_of_squares(xs):
    return sum(x * x for x in xs)
''', '''
# Test: sum_of_squares uses square_all
assert sum_of_squares([1, 2]) == 5
saved = square_all
del square_all
try:
    sum_of_squares([1])
except NameError:
    pass
else:
    raise AssertionError("sum_of_squares does not call square_all")
finally:
    square_all = saved
'''),
    ("counting_wrapper", '''
def area(r):
    return 3 * r * r

def total_area(radii):
    return sum(area(r) for r in radii)
''', '''
def area(r):
    return 3 * r * r

def total_area(radii):
    return sum(3 * r * r for r in radii)
''', '''
# Test: total_area calls area once per radius
original_area = area
seen = []
def counting_area(r):
    seen.append(r)
    return original_area(r)
area = counting_area
try:
    assert total_area([1, 2]) == 15
finally:
    area = original_area
assert seen == [1, 2], seen
'''),
    ("mock_wraps", '''
def clean(word):
    return word.strip().lower()

def clean_all(words):
    return [clean(w) for w in words]
''', '''
def clean(word):
    return word.strip().lower()

def clean_all(words):
    return [w.strip().lower() for w in words]
''', '''
# Test: clean_all relies on clean
spy = mock.Mock(wraps=clean)
real_clean = clean
clean = spy
try:
    assert clean_all([" A", "b "]) == ["a", "b"]
finally:
    clean = real_clean
assert spy.call_count == 2
'''),
    ("global_read", '''
RATE = 0.5

def discounted(price):
    return price * (1 - RATE)
''', '''
RATE = 0.5

def discounted(price):
    return price * 0.5
''', '''
# Test: discounted reads the global RATE
RATE = 0.25
assert discounted(100) == 75
RATE = 0.5
'''),
    ("globals_dict", '''
def make_greeting(name):
    return f"Hello, {name}!"
''', '''
def make_greetings(name):
    return f"Hello, {name}!"
''', '''
# Test: make_greeting is defined and greets
assert "make_greeting" in globals()
assert globals()["make_greeting"]("Ann") == "Hello, Ann!"
'''),
    ("global_changed", '''
ticks = 0

def tick():
    global ticks
    ticks += 1
''', '''
ticks = 0

def tick():
    count = ticks + 1
''', '''
# Test: tick counts in the global ticks
ticks = 0
tick()
tick()
assert ticks == 2
'''),
    ("underscore", '''
def cube(x):
    return x ** 3
''', '''
def cube(x):
    return x ** 2
''', '''
# Test: the cell above showed cube(3)
assert _ == 27
''', "cube(3)"),
    ("student_list_changed", '''
WORDS = ["a", "b"]

def count_words():
    return len(WORDS)
''', '''
WORDS = ["a", "b"]

def count_words():
    return 2
''', '''
# Test: count_words follows WORDS
WORDS.append("c")
assert count_words() == 3
WORDS.pop()
'''),
])

KINDS["output"] = ("import contextlib\nimport io\nfrom unittest import mock", [
    ("redirect_stdout", '''
def greet(name):
    print(f"Hello, {name}!")
''', '''
def greet(name):
    print(f"Hi, {name}")
''', '''
# Test: greet prints the greeting
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    greet("Ann")
assert buffer.getvalue() == "Hello, Ann!\\n", buffer.getvalue()
'''),
    ("redirect_stderr", '''
import sys

def warn(text):
    print("warning:", text, file=sys.stderr)
''', '''
import sys

def warn(text):
    print("warning:", text)
''', '''
# Test: warn writes to stderr
err = io.StringIO()
with contextlib.redirect_stderr(err):
    warn("low")
assert err.getvalue() == "warning: low\\n"
'''),
    ("print_returns_none", '''
def show_total(xs):
    print(sum(xs))
''', '''
def show_total(xs):
    return sum(xs)
''', '''
# Test: show_total prints and returns nothing
out = io.StringIO()
with contextlib.redirect_stdout(out):
    result = show_total([1, 2, 3])
assert result is None
assert out.getvalue().strip() == "6"
'''),
    ("patched_input", '''
def ask_age():
    return int(input("Age? "))
''', '''
def ask_age():
    return 42.5
''', '''
# Test: ask_age reads the age typed in
with mock.patch("builtins.input", return_value="42"):
    assert ask_age() == 42
with mock.patch("builtins.input", side_effect=["7"]):
    assert ask_age() == 7
'''),
])

KINDS["files"] = ("import os\nimport numpy as np", [
    ("test_reads_written_file", '''
def save_squares(path, n):
    with open(path, "w") as f:
        for i in range(1, n + 1):
            f.write(f"{i * i}\\n")
''', '''
def save_squares(path, n):
    with open(path, "w") as f:
        f.write("1\\n")
''', '''
# Test: save_squares writes one square per line
save_squares("squares.txt", 3)
with open("squares.txt") as f:
    assert f.read().split() == ["1", "4", "9"]
'''),
    ("student_reads_test_file", '''
def total_in_file(path):
    with open(path) as f:
        return sum(int(x) for x in f.read().split())
''', '''
def total_in_file(path):
    return 6
''', '''
# Test: total_in_file adds the numbers of a file
with open("numbers.txt", "w") as f:
    f.write("1 2 3 10")
assert total_in_file("numbers.txt") == 16
'''),
    ("shipped_data_file", '''
def count_rows(path):
    with open(path) as f:
        return len(f.read().splitlines()) - 1
''', '''
def count_rows(path):
    return 3
''', '''
# Test: count_rows counts the data rows of data.csv
with open("data.csv") as f:
    expected = len(f.read().splitlines()) - 1
assert count_rows("data.csv") == expected
'''),
    ("numpy_reads_data", '''
def total_people(path):
    return int(np.loadtxt(path, delimiter=",", skiprows=1, usecols=1).sum())
''', '''
def total_people(path):
    return 0
''', '''
# Test: total_people adds the second column of data.csv
with open("data.csv") as f:
    rows = [line.split(",") for line in f.read().splitlines()[1:]]
assert total_people("data.csv") == sum(int(r[1]) for r in rows)
'''),
    ("numpy_file", '''
def save_identity(path, n):
    np.savetxt(path, np.eye(n))
''', '''
def save_identity(path, n):
    np.savetxt(path, np.ones((n, n)))
''', '''
# Test: save_identity writes an identity matrix
save_identity("eye.txt", 3)
np.testing.assert_allclose(np.loadtxt("eye.txt"), np.eye(3))
'''),
    ("file_exists", '''
def make_report(path):
    with open(path, "w") as f:
        f.write("ok")
''', '''
def make_report(path):
    pass
''', '''
# Test: make_report creates the file
if os.path.exists("report.txt"):
    os.remove("report.txt")
make_report("report.txt")
assert os.path.exists("report.txt")
'''),
])

KINDS["plots"] = ("import matplotlib\nmatplotlib.use('Agg')\n"
                  "import matplotlib.pyplot as plt\nimport numpy as np", [
    ("plotted_line", '''
def plot_squares():
    xs = [0, 1, 2, 3]
    plt.figure()
    plt.plot(xs, [x * x for x in xs])
    plt.title("Squares")
''', '''
def plot_squares():
    xs = [0, 1, 2, 3]
    plt.figure()
    plt.plot(xs, xs)
''', '''
# Test: one line of the squares, with its title
lines = plt.gca().get_lines()
assert len(lines) == 1
np.testing.assert_allclose(lines[0].get_ydata(), [0, 1, 4, 9])
assert plt.gca().get_title() == "Squares"
''', "plot_squares()"),
    ("axis_labels", '''
def label_axes():
    plt.figure()
    plt.plot([1, 2], [3, 4])
    plt.xlabel("time (s)")
    plt.ylabel("speed (m/s)")
''', '''
def label_axes():
    plt.figure()
    plt.plot([1, 2], [3, 4])
''', '''
# Test: both axes are labelled
ax = plt.gca()
assert ax.get_xlabel() == "time (s)"
assert ax.get_ylabel() == "speed (m/s)"
''', "label_axes()"),
])

KINDS["objects"] = ("import inspect\nimport itertools\nimport random\n"
                    "from collections import Counter, deque, namedtuple\n"
                    "from decimal import Decimal\nfrom fractions import Fraction\n"
                    "import numpy as np", [
    ("student_class_type", '''
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

def origin():
    return Point(0, 0)
''', '''
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

def origin():
    return (0, 0)
''', '''
# Test: origin gives a Point at (0, 0)
p = origin()
assert type(p) == Point
assert isinstance(p, Point)
assert (p.x, p.y) == (0, 0)
'''),
    ("getsource", '''
def double_all(xs):
    return [2 * x for x in xs]
''', '''
def double_all(xs):
    return list(map(lambda x: 2 * x, xs))
''', '''
# Test: double_all uses a list comprehension
assert double_all([1, 2]) == [2, 4]
assert " for " in inspect.getsource(double_all)
'''),
    ("docstring", '''
def mean(xs):
    """The arithmetic mean of a non-empty list of numbers."""
    return sum(xs) / len(xs)
''', '''
def mean(xs):
    return sum(xs) / len(xs)
''', '''
# Test: mean is documented
assert mean([1, 2, 3]) == 2
assert mean.__doc__ is not None and len(mean.__doc__.strip()) > 10
'''),
    ("function_name", '''
import functools

def logged(f):
    @functools.wraps(f)
    def wrapper(*args):
        return f(*args)
    return wrapper

@logged
def add(a, b):
    return a + b
''', '''
def logged(f):
    def wrapper(*args):
        return f(*args)
    return wrapper

@logged
def add(a, b):
    return a + b
''', '''
# Test: the decorator keeps the function's name
assert add(2, 3) == 5
assert add.__name__ == "add"
'''),
    ("student_exception", '''
class InsufficientFunds(Exception):
    pass

def withdraw(balance, amount):
    if amount > balance:
        raise InsufficientFunds(f"{amount} > {balance}")
    return balance - amount
''', '''
class InsufficientFunds(Exception):
    pass

def withdraw(balance, amount):
    if amount > balance:
        raise ValueError("too much")
    return balance - amount
''', '''
# Test: withdraw raises InsufficientFunds
assert withdraw(10, 3) == 7
try:
    withdraw(10, 20)
except InsufficientFunds as e:
    assert "20" in str(e)
else:
    raise AssertionError("no InsufficientFunds")
'''),
    ("infinite_generator", '''
def naturals():
    n = 0
    while True:
        yield n
        n += 1
''', '''
def naturals():
    n = 1
    while True:
        yield n
        n += 1
''', '''
# Test: naturals counts from 0, lazily
g = naturals()
assert next(g) == 0
assert next(g) == 1
assert list(itertools.islice(naturals(), 5)) == [0, 1, 2, 3, 4]
'''),
    ("counter_result", '''
def letter_counts(text):
    return Counter(text)
''', '''
def letter_counts(text):
    return Counter(set(text))
''', '''
# Test: letter_counts counts every letter
assert letter_counts("abca") == Counter({"a": 2, "b": 1, "c": 1})
assert letter_counts("abca").most_common(1) == [("a", 2)]
'''),
    ("fraction_result", '''
def harmonic(n):
    return sum(Fraction(1, k) for k in range(1, n + 1))
''', '''
def harmonic(n):
    return sum(1 / k for k in range(1, n + 1))
''', '''
# Test: harmonic is exact
assert harmonic(3) == Fraction(11, 6)
assert isinstance(harmonic(3), Fraction)
'''),
    ("decimal_result", '''
def total_price(prices):
    return sum(Decimal(p) for p in prices)
''', '''
def total_price(prices):
    return sum(float(p) for p in prices)
''', '''
# Test: total_price adds exactly
assert total_price(["0.10", "0.20"]) == Decimal("0.30")
'''),
    ("deque_result", '''
def last_three(xs):
    return deque(xs, maxlen=3)
''', '''
def last_three(xs):
    return deque(xs)
''', '''
# Test: last_three keeps the last three items
d = last_three(range(5))
assert d == deque([2, 3, 4])
assert d.maxlen == 3
'''),
    ("namedtuple_result", '''
Pair = namedtuple("Pair", "left right")

def make_pair(a, b):
    return Pair(a, b)
''', '''
def make_pair(a, b):
    return (b, a)
''', '''
# Test: make_pair gives a named pair
p = make_pair(1, 2)
assert p == (1, 2)
assert p.left == 1 and p.right == 2
'''),
    ("string_array", '''
def labels(n):
    return np.array([f"item{i}" for i in range(n)])
''', '''
def labels(n):
    return np.array([f"item{i + 1}" for i in range(n)])
''', '''
# Test: labels names the items from 0
out = labels(3)
assert out.shape == (3,)
np.testing.assert_array_equal(out, ["item0", "item1", "item2"])
assert out.tolist() == ["item0", "item1", "item2"]
'''),
    ("signature", '''
def clip(x, low=0, high=1):
    return max(low, min(high, x))
''', '''
def clip(x, bounds=(0, 1)):
    return max(bounds[0], min(bounds[1], x))
''', '''
# Test: clip takes x, low and high (with defaults 0 and 1)
params = inspect.signature(clip).parameters
assert list(params) == ["x", "low", "high"]
assert params["low"].default == 0 and params["high"].default == 1
assert clip(5) == 1
'''),
    ("repr_and_len", '''
class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.append(x)
    def __len__(self):
        return len(self.items)
    def __repr__(self):
        return f"Stack({self.items})"
''', '''
class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.insert(0, x)
    def __len__(self):
        return 0
''', '''
# Test: a Stack counts and shows its items
s = Stack()
s.push(1)
s.push(2)
assert len(s) == 2
assert repr(s) == "Stack([1, 2])"
assert s.items == [1, 2]
assert hasattr(s, "push") and callable(s.push)
'''),
    ("finite_generator", '''
def evens(n):
    for i in range(n):
        yield 2 * i
''', '''
def evens(n):
    return [2 * i for i in range(n)]
''', '''
# Test: evens is a generator of the first n even numbers
import types
g = evens(3)
assert isinstance(g, types.GeneratorType) or not isinstance(g, list)
assert list(g) == [0, 2, 4]
assert sum(evens(4)) == 12
'''),
    ("dict_result", '''
def word_lengths(words):
    return {w: len(w) for w in words}
''', '''
def word_lengths(words):
    return [len(w) for w in words]
''', '''
# Test: word_lengths maps each word to its length
assert word_lengths(["ab", "c"]) == {"ab": 2, "c": 1}
assert sorted(word_lengths(["xyz"]).items()) == [("xyz", 3)]
'''),
    ("random_seed", '''
def roll():
    return random.randint(1, 6)
''', '''
def roll():
    return 7
''', '''
# Test: roll draws from the random module
random.seed(0)
first = roll()
random.seed(0)
assert first == random.randint(1, 6)
'''),
])

KINDS["mutation"] = ("import numpy as np", [
    ("changes_list_in_place", '''
def double_in_place(xs):
    for i in range(len(xs)):
        xs[i] *= 2
''', '''
def double_in_place(xs):
    xs = [2 * x for x in xs]
''', '''
# Test: double_in_place changes the list it is given
data = [1, 2, 3]
result = double_in_place(data)
assert result is None
assert data == [2, 4, 6], data
'''),
    ("leaves_argument_alone", '''
def sorted_copy(xs):
    return sorted(xs)
''', '''
def sorted_copy(xs):
    xs.sort()
    return xs
''', '''
# Test: sorted_copy sorts without changing its input
data = [3, 1, 2]
assert sorted_copy(data) == [1, 2, 3]
assert data == [3, 1, 2], data
'''),
    ("dict_in_place", '''
def add_item(inventory, name, count):
    inventory[name] = inventory.get(name, 0) + count
''', '''
def add_item(inventory, name, count):
    inventory = dict(inventory)
    inventory[name] = count
''', '''
# Test: add_item updates the inventory
stock = {"apple": 1}
add_item(stock, "apple", 2)
add_item(stock, "pear", 1)
assert stock == {"apple": 3, "pear": 1}
'''),
    ("array_in_place", '''
def normalize_(a):
    a /= a.sum()
''', '''
def normalize_(a):
    a = a / a.sum()
''', '''
# Test: normalize_ scales the array in place
a = np.array([1.0, 3.0])
normalize_(a)
np.testing.assert_allclose(a, [0.25, 0.75])
'''),
    ("set_in_place", '''
def add_all(seen, items):
    seen.update(items)
''', '''
def add_all(seen, items):
    seen = seen | set(items)
''', '''
# Test: add_all adds to the set it is given
seen = {1}
add_all(seen, [2, 3])
assert seen == {1, 2, 3}
'''),
    ("returns_same_list", '''
def append_one(xs):
    xs.append(1)
    return xs
''', '''
def append_one(xs):
    return xs + [1]
''', '''
# Test: append_one returns the very list it was given
data = [0]
assert append_one(data) is data
assert data == [0, 1]
'''),
])

KINDS["test_objects"] = ("import numpy as np", [
    ("random_generator", '''
def sample_mean(rng, n):
    return rng.normal(size=n).mean()
''', '''
def sample_mean(rng, n):
    return np.random.default_rng(1).normal(size=n).mean()
''', '''
# Test: sample_mean draws from the generator it is given
expected = np.random.default_rng(0).normal(size=100).mean()
assert abs(sample_mean(np.random.default_rng(0), 100) - expected) < 1e-12
'''),
    ("test_double", '''
def average_reading(sensor, n):
    return sum(sensor.read() for _ in range(n)) / n
''', '''
def average_reading(sensor, n):
    return sensor.read()
''', '''
# Test: average_reading reads the sensor n times
class FakeSensor:
    def __init__(self):
        self.reads = 0
    def read(self):
        self.reads += 1
        return 10.0 * self.reads
sensor = FakeSensor()
assert average_reading(sensor, 3) == 20.0
assert sensor.reads == 3
'''),
    ("callback_function", '''
def apply_twice(f, x):
    return f(f(x))
''', '''
def apply_twice(f, x):
    return f(x)
''', '''
# Test: apply_twice calls the function twice
calls = []
def add_three(x):
    calls.append(x)
    return x + 3
assert apply_twice(add_three, 1) == 7
assert calls == [1, 4]
'''),
])

KINDS["library"] = ("import numpy as np\nimport d2lblocks as db\nfrom d2lblocks import nn", [
    ("patched_relu", '''
def make_net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
''', '''
def make_net():
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
''', '''
# Test: the network applies ReLU
calls = []
original_forward = nn.ReLU.forward
def counting_forward(self, X):
    calls.append(1)
    return original_forward(self, X)
nn.ReLU.forward = counting_forward
try:
    make_net()(db.tensor(np.ones((2, 3))))
finally:
    nn.ReLU.forward = original_forward
assert len(calls) == 1
'''),
    ("layer_kinds", '''
def make_net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
''', '''
def make_net():
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
''', '''
# Test: the network has a ReLU between two Linear layers
net = make_net()
kinds = [type(layer).__name__ for layer in net.children()]
assert kinds == ["Linear", "ReLU", "Linear"], kinds
'''),
])


def _cell(source, **nbgrader):
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    if nbgrader:
        cell.metadata["nbgrader"] = dict(schema_version=3, locked=False, **nbgrader)
    return cell


def notebook(kind, version):
    """The notebook of one kind: ``version`` is "source", "right" or
    "wrong"."""
    header, cases = KINDS[kind]
    cells = [_cell(header)]
    for name, answer, wrong, test, *extra in cases:
        text = {"source": f"### BEGIN SOLUTION\n{answer.strip()}\n### END SOLUTION",
                "right": answer, "wrong": wrong}[version]
        cells.append(_cell(text, grade=False, solution=True, grade_id=f"{name}_answer"))
        cells.extend(_cell(e) for e in extra)
        cells.append(_cell(test, grade=True, solution=False, grade_id=name, points=1))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


DATA_CSV = "city,people\nAmsterdam,921402\nBerlin,3755251\nLyon,522250\nOslo,717710\n"


def build(root):
    """Write the course (config, source, submissions of ``right`` and
    ``wrong``) into the folder ``root``; returns the grade ids per
    notebook."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "fidelity"\n'
        "c.Execute.timeout = 30\n")
    folders = {"source": root / "source" / ASSIGNMENT}
    for student in ("right", "wrong"):
        folders[student] = root / "submitted" / student / ASSIGNMENT
    for version, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text(DATA_CSV)
        for kind in KINDS:
            nbformat.write(notebook(kind, version), folder / f"{kind}.ipynb")
        if version != "source":
            (folder / "timestamp.txt").write_text("2026-12-01 12:00:00.000000 UTC")
    return {f"{kind}.ipynb": [case[0] for case in KINDS[kind][1]] for kind in KINDS}
