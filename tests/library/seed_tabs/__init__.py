"""The seed's examples (section 5.1), one module per framework tab, run on
d2lblocks. ``tests/library/test_seed_examples.py`` checks each of them."""
