"""Model files: fastnn's safe format (the default) and the book's pickle (only on request).

``Model.save``/``Model.load`` and ``Model.save_parameters``/``load_parameters`` call these::

    save_model(model, path, *, format="fastnn")           # or format="pickle" (the book's file)
    load_model(path, *, allow_pickle=False) -> Model
    save_parameters(model, path, *, format="fastnn")      # or format="pickle"
    load_parameters(model, path, *, allow_pickle=False)   # into an already finalized model

``archive`` is the container (zip, atomic writes, file kinds), ``codec`` the description generic
over the class declarations, ``files`` the four functions. docs/file-format.md describes the format.
"""
from .archive import ModelFileError
from .codec import FORMAT_VERSION, MODEL_FORMAT, PARAMETERS_FORMAT
from .files import load_model, load_parameters, save_model, save_parameters

__all__ = ["save_model", "load_model", "save_parameters", "load_parameters", "ModelFileError",
           "MODEL_FORMAT", "PARAMETERS_FORMAT", "FORMAT_VERSION"]
