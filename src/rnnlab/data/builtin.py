"""Datasets that ship with Python or with a dependency: nothing to download.

Text: the English documentation inside every CPython, ``pydoc_data.topics`` (the text ``help()``
shows for keywords and topics: about 465,000 characters in 79 topics on Python 3.11).
"""
from __future__ import annotations

from rnnlab.errors import DataError


def pydoc_topics_text() -> str:
    """All ``pydoc_data.topics`` entries, sorted by topic name, separated by a blank line.

    The order is fixed so the same Python gives the same corpus (and the same split) every time.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        raise DataError("the built-in corpus needs the standard-library module pydoc_data, which this Python "
                        "lacks; pass --data PATH to a UTF-8 text file instead") from None
    return "\n\n".join(topics[name].strip("\n") for name in sorted(topics)) + "\n"
