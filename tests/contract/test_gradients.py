"""Every backward of every declared class (and of its fastnn.reference twin) against central finite
differences, in float64: layers with f = sum(output * G) (plus the regularisation loss of a
trainable layer) for dinputs and each parameter's gradient, losses with the mean loss
(``calculate``), the combined softmax/cross-entropy with its Ch9-17 forward. The case's `values`
keep the points away from kinks (tests/cases.py); the tolerance is tests/_numeric.py's."""
import numpy as np
import pytest

from cases import cases, ids
from contract.harness import LIBS, data, gradient_problem, pair

from _numeric import check_gradient

CHECKED = [case for case in cases(setups=True) if case.gradient_checked]


@pytest.mark.parametrize("lib", list(LIBS))
@pytest.mark.parametrize("case", CHECKED, ids=ids(CHECKED))
def test_backward_matches_finite_differences(case, lib):
    objects = dict(zip(LIBS, pair(case, np.float64)))
    made = data(case, np.float64, seed=2024)
    f, wanted = gradient_problem(case, LIBS[lib], objects[lib], made)
    for analytic, array, name in wanted:
        check_gradient(analytic, f, array, f"{case.label} {name}")
