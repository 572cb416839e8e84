"""Helpers shared by the gradient tests (importable because pyproject's pytest `pythonpath` lists tests/)."""
import numpy as np

H = 1e-6


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
