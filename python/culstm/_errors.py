"""culstm's exceptions: one class per StatusCode of the C++ library, all under culstm.Error.

The classes are made from the library's own list of codes (so a new code gets a class without editing Python), and
registered with the extension, which raises them with the library's message."""

from . import _culstm


class Error(RuntimeError):
    """Base class of every culstm error. `code` is the StatusCode's value, `code_name` its name ("ShapeMismatch")."""

    code = -1
    code_name = "Unknown"


# code name -> class, e.g. "ShapeMismatch" -> ShapeMismatchError
BY_CODE_NAME = {}

for _code, _name in _culstm.status_codes():
    _class_name = _name if _name.endswith("Error") else _name + "Error"
    _cls = type(_class_name, (Error,), {
        "code": _code,
        "code_name": _name,
        "__module__": "culstm",
        "__doc__": f"The library's StatusCode {_name} (value {_code}).",
    })
    _culstm._register_error_class(_code, _cls)
    BY_CODE_NAME[_name] = _cls
    globals()[_class_name] = _cls

__all__ = ["Error"] + [cls.__name__ for cls in BY_CODE_NAME.values()]


def error(code_name, message):
    """The exception for a failure found in Python (an argument the C++ API cannot even be given)."""
    return BY_CODE_NAME[code_name](message)
