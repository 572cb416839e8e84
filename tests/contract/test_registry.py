"""The registry, the cases and the exports agree: every declared class has a case (and every case a
declared class), fastnn exports exactly the declared classes, fastnn.reference has each of them
under the same name, and each case's data make sense for its declaration."""
import inspect

import pytest

import fastnn
import fastnn.reference as ref
from fastnn._core.spec import KINDS, declared, spec_of

from cases import CASES, PROTOCOLS, cases, ids
from contract import harness

# fastnn's public names that are not classes (and so not declared).
NOT_CLASSES = {"History", "init", "show_config", "default_dtype", "dropout_mode", "__version__"}


def missing_and_unknown(declared_names, case_names):
    return sorted(set(declared_names) - set(case_names)), sorted(set(case_names) - set(declared_names))


def test_every_declared_class_has_a_case():
    missing, unknown = missing_and_unknown([spec.name for spec in declared()], CASES)
    assert not missing, f"declared classes without a case in tests/cases.py: {missing}"
    assert not unknown, f"cases in tests/cases.py for classes nobody declared: {unknown}"


def test_the_completeness_check_sees_a_missing_and_an_unknown_case():
    names = [spec.name for spec in declared()]
    assert missing_and_unknown(names + ["Activation_NotDeclaredAnywhere"], CASES) == (["Activation_NotDeclaredAnywhere"], [])
    assert missing_and_unknown(names[1:], CASES) == ([], [names[0]])


def test_fastnn_exports_exactly_the_declared_classes():
    classes = {name for name in fastnn.__all__ if name not in NOT_CLASSES}
    assert classes == {spec.name for spec in declared()}
    assert [name for name in fastnn.__all__ if name in classes] == [spec.name for spec in declared()]
    namespace = {}
    exec("from fastnn import *", namespace)
    for spec in declared():
        assert getattr(fastnn, spec.name) is spec.cls is namespace[spec.name]
        assert spec_of(spec.cls) is spec and spec.kind in KINDS
    assert NOT_CLASSES <= set(fastnn.__all__)


@pytest.mark.parametrize("spec", declared(), ids=[spec.name for spec in declared()])
def test_the_reference_has_every_declared_class_under_its_name(spec):
    twin = getattr(ref, spec.name, None)
    assert isinstance(twin, type) and twin.__name__ == spec.name, f"fastnn.reference lacks {spec.name}"
    assert twin is not spec.cls and twin.__module__.startswith("fastnn.reference")


def test_the_book_names_are_declared():
    """fastnn.reference.__all__ lists the book's classes: each is declared (the classes beyond the
    book are declared and in fastnn.reference too, outside its __all__)."""
    declared_names = {spec.name for spec in declared()}
    assert set(ref.__all__) <= declared_names


@pytest.mark.parametrize("case", cases(setups=True), ids=ids(cases(setups=True)))
def test_each_case_fits_its_declaration(case):
    spec = case.spec
    assert case.protocol in PROTOCOLS
    expected = {"layer": "layer", "loss": "loss", "combined": "loss", "accuracy": "accuracy",
                "optimizer": "optimizer"}.get(case.protocol, spec.kind)
    assert spec.kind == expected, f"{case.label}: a {spec.kind} driven as a {case.protocol}"
    signature = inspect.signature(spec.cls)
    for name in (*case.kwargs, *case.parity_kwargs):
        assert name in signature.parameters, f"{case.label}: {name} is no constructor parameter"
    assert set(case.kwargs) <= set(spec.params), f"{case.label}: kwargs beyond the declared parameters"
    for name, value in case.kwargs.items():
        spec.params[name](value, name, spec.name)             # the case's arguments are valid
    for kwargs, error, message in case.invalid:
        assert issubclass(error, (TypeError, ValueError)) and message
    if case.head is not None:
        assert CASES[case.head].spec.kind == "layer"
    if case.loss is not None:
        assert CASES[case.loss].protocol == "loss"
    if case.gradient_checked:
        assert case.protocol in ("layer", "loss", "combined") and case.backward
    if case.ndim is not None:
        assert len(case.inputs) == case.ndim
    for view in case.views:
        assert view in ("output", "dinputs")
    harness.build(case)                                       # and they build
