"""A block's rich display in a notebook (``_repr_html_``): a collapsible
tree of its children with each parameter's shape, dtype, device and size.
The HTML is parsed with ``html.parser`` and read as a tree of elements."""

from html.parser import HTMLParser

import pytest

import d2lblocks as db
from d2lblocks import nn
from d2lblocks.nn.display import block_html

VOID = {"br", "hr", "img", "meta", "link", "input", "col", "wbr"}


class Element:
    """One parsed element: its tag, attributes and children (elements
    and strings)."""

    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children = tag, dict(attrs), []

    def find_all(self, tag):
        """Every element with ``tag`` below this one, in document order."""
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag:
                    yield child
                yield from child.find_all(tag)

    def kids(self, tag):
        """The elements with ``tag`` directly below this one."""
        return [c for c in self.children if isinstance(c, Element) and c.tag == tag]

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class TreeBuilder(HTMLParser):
    """Builds :class:`Element` trees and insists that every tag closes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", [])
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(text):
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], "an element was left open"
    return builder.root


def branch_named(details, name):
    """The ``<details>`` of the child called ``name`` directly inside
    ``details``."""
    (body,) = details.kids("div")
    found = [d for d in body.kids("details")
             if d.kids("summary")[0].text().startswith(f"{name}:")]
    assert len(found) == 1, [d.kids("summary")[0].text() for d in body.kids("details")]
    return found[0]


def rows(details):
    """``{parameter name: [cell texts]}`` of one block's own table."""
    (body,) = details.kids("div")
    tables = body.kids("table")
    if not tables:
        return {}
    table_rows = list(tables[0].find_all("tr"))
    header = [th.text() for th in table_rows[0].kids("th")]
    assert header[:5] == ["parameter", "shape", "dtype", "device", "elements"]
    return {tds[0].text(): [td.text() for td in tds]
            for tds in (r.kids("td") for r in table_rows[1:])}


class WithList(nn.Block):
    """A block that keeps one layer in a plain list (not registered)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.extra = [nn.Linear(2, 2)]

    def forward(self, X):
        return self.extra[0](self.head(X))


def test_the_tree_holds_every_child_with_its_parameters():
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 8), nn.ReLU(),
                        nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 3)))
    root = parse(net._repr_html_())
    (top,) = root.kids("div")
    (tree,) = top.kids("details")
    assert "open" in tree.attrs
    assert tree.kids("summary")[0].text().startswith("Sequential()")
    # 20*8 + 8 + 8*4 + 4 + 4*3 + 3 elements in all
    assert "219 parameters" in tree.kids("summary")[0].text()
    first = branch_named(tree, "0")
    assert rows(first) == {"weight": ["weight", "(8, 20)", "float32", "cpu", "160", ""],
                           "bias": ["bias", "(8,)", "float32", "cpu", "8", ""]}
    assert rows(branch_named(tree, "1")) == {}
    inner = branch_named(tree, "2")
    assert rows(branch_named(inner, "1"))["weight"][1:5] == \
        ["(3, 4)", "float32", "cpu", "12"]
    assert len(list(root.find_all("details"))) == 6


def test_lazy_parameters_are_marked_not_yet_created():
    net = nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(2))
    tree = parse(net._repr_html_()).kids("div")[0].kids("details")[0]
    assert "not yet created" in tree.kids("summary")[0].text()
    weight = rows(branch_named(tree, "0"))["weight"]
    assert weight[1] == "(16, ?)" and weight[4] == "not yet created"
    net(db.rand(3, 5))
    tree = parse(net._repr_html_()).kids("div")[0].kids("details")[0]
    weight = rows(branch_named(tree, "0"))["weight"]
    assert weight[1:5] == ["(16, 5)", "float32", "cpu", "80"]
    assert "not yet created" not in net._repr_html_()


def test_shared_parameters_name_the_other_names():
    shared = nn.Linear(3, 3)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    tree = parse(net._repr_html_()).kids("div")[0].kids("details")[0]
    first = rows(branch_named(tree, "0"))
    assert first["weight"][5] == "shared with 2.weight"
    assert first["bias"][5] == "shared with 2.bias"
    body = tree.kids("div")[0]
    again = [d.text() for d in body.kids("div")]
    assert any(t.startswith("2: Linear, the same block as 0") for t in again), again
    # counted once: 9 + 3
    assert "12 parameters" in tree.kids("summary")[0].text()


def test_a_parameter_tied_between_two_layers_is_marked_on_both():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    net = nn.Sequential(a, b)
    tree = parse(net._repr_html_()).kids("div")[0].kids("details")[0]
    assert rows(branch_named(tree, "0"))["weight"][5] == "shared with 1.weight"
    assert rows(branch_named(tree, "1"))["weight"][5] == "shared with 0.weight"
    assert rows(branch_named(tree, "1"))["bias"][5] == ""


def test_a_block_in_a_plain_list_is_a_warning_with_the_fix():
    net = WithList()
    html_text = net._repr_html_()
    tree = parse(html_text).kids("div")[0].kids("details")[0]
    warnings = [d for d in tree.kids("div")[0].kids("div")
                if "background" in d.attrs.get("style", "")]
    assert len(warnings) == 1
    text = warnings[0].text()
    assert text.startswith("\u26a0 extra[0]: Linear(")
    assert "nn.BlockList" in text and "add_module" in text
    # a dict says nn.BlockDict
    net.extra = {"out": nn.Linear(2, 2)}
    assert "nn.BlockDict" in parse(net._repr_html_()).text()
    # registered properly: no warning any more
    net.extra = nn.BlockList([nn.Linear(2, 2)])
    assert "not registered" not in net._repr_html_()


def test_a_nested_list_warning_sits_under_its_owner():
    net = nn.Sequential(nn.Linear(4, 4), WithList())
    tree = parse(net._repr_html_()).kids("div")[0].kids("details")[0]
    top_level = [d.text() for d in tree.kids("div")[0].kids("div")]
    assert not any("not registered" in t for t in top_level)
    owner = branch_named(tree, "1").kids("div")[0]
    assert any(d.text().startswith("\u26a0 1.extra[0]") for d in owner.kids("div"))


def test_names_and_settings_are_escaped():
    class Odd(nn.Block):
        def __init__(self):
            super().__init__()
            self.add_module("<b>x</b>", nn.Linear(2, 2))
            self.items = {"<i>&": nn.Linear(1, 1)}

        def extra_repr(self):
            return "<script>alert(1)</script>"

    text = Odd()._repr_html_()
    assert "<script>" not in text and "<b>x</b>" not in text and "<i>&" not in text
    plain = parse(text).text()
    assert "<script>alert(1)</script>" in plain and "<b>x</b>" in plain
    assert "<i>&" in plain


def test_no_javascript_and_plain_repr_unchanged():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    text = net._repr_html_()
    assert text == block_html(net)
    lowered = text.lower()
    assert "<script" not in lowered and "onclick" not in lowered
    assert "javascript:" not in lowered
    assert repr(net) == ("Sequential(\n"
                         "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
                         "  (1): ReLU()\n)")


@pytest.mark.parametrize("depth, opened", [(1, 2), (4, 3)])
def test_deep_trees_start_folded_below_the_first_levels(depth, opened):
    net = nn.Linear(2, 2)
    for _ in range(depth):
        net = nn.Sequential(net)
    details = list(parse(net._repr_html_()).find_all("details"))
    assert len(details) == depth + 1
    assert sum("open" in d.attrs for d in details) == opened
