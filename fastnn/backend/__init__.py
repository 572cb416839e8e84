"""Above fastnn._core, below the classes: the BLAS that fastnn shares with NumPy (``blas``), the
kernels' thread control (``threads``) and what this installation was built with
(``build_info``, behind ``fastnn.show_config``)."""
