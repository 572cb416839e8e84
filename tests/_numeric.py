"""Helpers shared by the gradient tests (importable because pyproject's pytest `pythonpath` lists tests/)."""
import numpy as np

H = 1e-6
RTOL = 1e-6


def numerical_gradient(f, x, h=H):
    """Central differences of the scalar f() with respect to every element of the array x, which is
    perturbed in place and restored. Returns a float64 array of x's shape."""
    grad = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = float(f())
        x[index] = original - h
        minus = float(f())
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def check_gradient(analytic, f, x, what):
    """analytic must be d f() / d x: within rtol 1e-6 and atol 1e-8 * (1 + |f|) of the central
    differences (h = 1e-6: truncation error ~ h^2 |f'''| / 6 ~ 1e-13, cancellation ~ eps |f| / h ~
    2e-10 |f|), far below any real mistake (a wrong sign, a missing 1/n, a gradient taken at the
    wrong point). The gradient must not be negligible against that tolerance, or the check could
    not fail."""
    numeric = numerical_gradient(f, x)
    scale = 1 + abs(float(f()))
    assert analytic.shape == numeric.shape, what
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=1e-8 * scale, err_msg=what)
    assert np.max(np.abs(numeric)) > 1e3 * 1e-8 * scale, f"{what}: gradient too small to test"
