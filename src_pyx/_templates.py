"""The names the Tempita templates src_pyx/*.pyx.tp use. setup.py renders each template into the
.pyx beside it (git-ignored) before cythonizing, with this file's public names as the namespace.

dispatch() writes the one ladder that the loss, accuracy and fused-head entry points share: from
the NumPy type of their float arrays and the kind of their class-id labels, both known only at run
time, to the C types of a fused kernel's specialisation. Each entry point states its call once.
"""

# (C type, NumPy type number) of the float arrays: float32, else float64 (the entry points have
# checked that the arrays are one or the other).
FLOATS = (("float", "cnp.NPY_FLOAT32"), ("double", "cnp.NPY_FLOAT64"))
# (C type, kind from _labels.pxd) of the class ids: uint8, int32, else int64 (label_kind found one).
LABELS = (("uint8_t", "U8"), ("int32_t", "I32"), ("int64_t", "I64"))


def _ladder(cases, pad):
    """if / elif ... / else over cases [(condition, lines)]; the last case takes what is left."""
    lines = []
    for i, (condition, body) in enumerate(cases):
        if i == len(cases) - 1:
            lines.append(pad + "else:")
        else:
            lines.append(pad + ("if " if i == 0 else "elif ") + condition + ":")
        lines += body
    return lines


def dispatch(call, onehot=None, indent=8):
    """Cython lines that run `call` on the specialisation the entry point's arrays need.

    In `call`, {F} stands for the float C type, chosen by the entry point's local variable
    `typenum`, and {L} for the class ids' C type, chosen by its local variable `kind`:
    "_cce_sparse(<{F}*>p, <{L}*>y, n)" becomes an if/else over FLOATS, each holding an
    if/elif/else over LABELS; a call without {L} is chosen by typenum alone. `onehot`: the call
    (one-hot targets of the float type, {F}) that runs instead where the local variable `onehot`
    is true. The first line has no indentation, as the template's {{...}} stands where it goes;
    the others get `indent` spaces and more.
    """
    pad = " " * indent

    def by_kind(ftype):
        if "{L}" not in call:
            return [pad + "    " + call.format(F=ftype)]
        cases = [(f"kind == {kind}", [pad + "        " + call.format(F=ftype, L=ltype)]) for ltype, kind in LABELS]
        if onehot is not None:
            cases.insert(0, ("onehot", [pad + "        " + onehot.format(F=ftype)]))
        return _ladder(cases, pad + "    ")

    lines = _ladder([(f"typenum == {typenum}", by_kind(ftype)) for ftype, typenum in FLOATS], pad)
    return "\n".join(lines)[indent:]
