"""Domain errors: one line saying what is wrong, one saying what to do.

The CLI catches these at the top level and prints them without a traceback; library code raises them
wherever a user-supplied value, file or artifact is at fault.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class PdiffError(Exception):
    """An error the user can act on. `exit_code` follows the CLI convention (1 failed run, 2 bad input)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(PdiffError):
    """Bad flag, unknown name, invalid config: the command was asked for something that cannot be."""

    exit_code = EXIT_USAGE


class ArtifactError(PdiffError):
    """A missing, corrupt, unfinished or mismatched file in the workspace."""

    exit_code = EXIT_USAGE


class RunFailed(PdiffError):
    """A run started and could not finish (NaN loss, simulator failure, disk full)."""

    exit_code = EXIT_FAILED
