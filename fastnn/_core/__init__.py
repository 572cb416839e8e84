"""The bottom of fastnn's import graph: argument checks and messages (``checks``, ``messages``),
array conversion (``arrays``), process-wide defaults (``config``) and the declarations of the
classes (``spec``). Pure Python, no compiled kernel: ``fastnn.reference`` and
``fastnn.datasets`` use it without the build. Nothing here imports from the rest of fastnn.
"""
