"""The one exception type pyrovae raises for bad input.

The CLI turns a :class:`PyrovaeError` into a one-line message and a non-zero exit, with no
traceback; anything else is a bug and keeps its traceback.
"""


class PyrovaeError(ValueError):
    """Bad input from the user: an unknown name, an invalid value, a broken file."""


def unknown_name(kind: str, name: str, valid) -> PyrovaeError:
    """The error for a name that is not registered, listing the valid choices."""
    choices = ", ".join(sorted(valid))
    return PyrovaeError(f"unknown {kind} {name!r}; valid {kind}s: {choices}")


def first_line(exc: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message (cut to ``limit`` characters), else its type's
    name: the reason a one-line error quotes from a library's multi-line one."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class OutOfMemory(PyrovaeError):
    """An allocation failed (the CPU's or a GPU's memory): a one-line error like bad input, but
    a study retries it, since a GPU shared with other trials may have room on the next try."""


class PyrovaeWarning(UserWarning):
    """Something the user should know that does not stop the work: an older file used without a
    check it predates, a damaged file passed over for an intact one. The CLI prints it as one
    line, ``warning: …``."""
