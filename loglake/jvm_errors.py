"""Failures from the JVM (Spark, Hudi) as Python sees them, boiled down to the line that states them.

A Spark or Hudi error reaches Python as a Py4J or captured exception whose text is pages of stack
trace, often a Python traceback inside a Java one inside a Python one; the cause is somewhere deep.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

# Lines that wrap an error rather than state it.
_WRAPPERS = re.compile(
    r"^(Traceback|\s*File |\s+at |py4j\.|An exception was raised by the Python Proxy|\[STREAM_FAILED\]"
    r"|Caused by: py4j|During handling|The above exception|\s*\^)"
)


def chain_text(exc: BaseException, jvm: Any = None) -> str:
    """Everything the exception chain says: Python messages, Spark's captured descriptions and Java
    stack traces (with their ``Caused by`` lines, read through the JVM when it is at hand)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        for attr in ("_desc", "_stackTrace"):
            value = getattr(current, attr, None)
            if isinstance(value, str):
                parts.append(value)
        origin = getattr(current, "_origin", None) or getattr(current, "java_exception", None)
        if origin is not None and jvm is not None:
            # Best effort: the Python side of the chain is already in.
            with contextlib.suppress(Exception):
                parts.append(str(jvm.org.apache.commons.lang3.exception.ExceptionUtils.getStackTrace(origin)))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def deepest_error(text: str) -> str:
    """The innermost line that states an error (the last ``Caused by``, else the last exception line)."""
    marker = "Caused by: "
    lines = [line.strip() for line in text.splitlines()]
    causes = [
        line[len(marker) :] for line in lines if line.startswith(marker) and not line.startswith(marker + "py4j.")
    ]
    if causes:
        return causes[-1][:500]
    # Py4J prints the Java exception after ": " on the line below "An error occurred while calling ...".
    stated = [line.strip().removeprefix(": ") for line in text.splitlines() if not _WRAPPERS.match(line)]
    errors = [line for line in stated if re.match(r"^[\w.$]+(Error|Exception)\b", line)]
    return (errors[-1] if errors else text.strip().splitlines()[0] if text.strip() else "unknown error")[:500]


def jvm_gone(exc: BaseException) -> bool:
    """Whether ``exc`` says the Spark driver JVM no longer answers (killed, or exited out of memory)."""
    current: BaseException | None = exc
    while current is not None:
        # A bare Py4JError (not a Py4JJavaError, which carries a Java exception) is an empty answer.
        if isinstance(current, ConnectionError) or type(current).__name__ in ("Py4JNetworkError", "Py4JError"):
            return True
        current = current.__cause__ or current.__context__
    return False
