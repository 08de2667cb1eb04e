"""The one check every command-line test makes of a bad input (imported by the CLI test modules)."""
from __future__ import annotations

from rnnlab.cli import main


def fails(capsys, argv: list[str], *phrases: str) -> str:
    """``rnnlab ARGV`` exits 2 with exactly one line on stderr, no traceback, containing every phrase."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err
    return err
