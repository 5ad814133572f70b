"""The optional pandas dependency (``stacksim[pandas]``), imported only by what returns a DataFrame."""

from __future__ import annotations

from types import ModuleType

__all__ = ["require_pandas"]


def require_pandas(what: str) -> ModuleType:
    """
    The ``pandas`` module, imported now (``import stacksim`` never imports it).

    Raises:
        ImportError: pandas is not installed; the message names *what* needed it and the extra to install.
    """
    try:
        import pandas
    except ImportError:
        raise ImportError(
            f"{what} returns a pandas DataFrame and pandas is not installed: python3 -m pip install 'stacksim[pandas]'"
        ) from None
    module: ModuleType = pandas
    return module
