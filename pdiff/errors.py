"""Domain errors: one line saying what is wrong, one saying what to do.

The CLI catches these at the top level and prints them without a traceback; library code raises them
wherever a user-supplied value, file or artifact is at fault.
"""

from __future__ import annotations

import errno

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


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def from_os_error(exc: OSError) -> PdiffError:
    """A failed file operation as a one-line error: which file, what went wrong, what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    if exc.errno in _DISK_FULL:
        return RunFailed(
            f"disk full while writing {where} ({exc.strerror})",
            hint="free space (`pdiff gc` removes failed runs), then continue with `--resume RUN_ID`",
        )
    if exc.errno in _NOT_WRITABLE:
        return UsageError(
            f"cannot write {where} ({exc.strerror})",
            hint="use a writable --workspace (check its permissions and that it is not mounted read-only)",
        )
    return RunFailed(
        f"{exc.strerror or exc.__class__.__name__} on {where}",
        hint="check the path and the disk, then re-run (with -v for a traceback)",
    )
