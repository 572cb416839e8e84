"""The contract suite: tests parametrised over the declared classes and their cases (tests/cases.py)."""
