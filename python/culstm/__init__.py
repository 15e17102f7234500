"""culstm: fast LSTM inference. The framework-neutral core (LstmSpec, Model) takes arrays from any DLPack producer;
culstm.torch is a drop-in for torch.nn.LSTM at inference. docs/python.md."""

from . import _errors
from ._core import (Activation, LstmSpec, Model, import_model_file, info, load_model_file, save_model_file,
                    version)
from ._errors import *  # noqa: F401,F403  Error and one subclass per StatusCode

__version__ = version()
__all__ = ["Activation", "LstmSpec", "Model", "load_model_file", "import_model_file", "save_model_file", "info",
           "version"] + _errors.__all__
