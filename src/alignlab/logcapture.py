"""Hold back what a library logs while one call runs, so the user reads it in alignlab's words.

    with captured_logs("pypdf") as records:
        reader = PdfReader(data)
    # records: the logging.LogRecords pypdf emitted; none of them reached the console

Libraries report on their own loggers (InstructLab's parser a file's problems, pypdf what it
repaired in an odd PDF); printed as they come, they are raw lines without the file they are
about. Captured, the caller turns them into its own findings or one line per file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs(name: str, level: int = logging.DEBUG) -> Iterator[list[logging.LogRecord]]:
    """Every record at `level` or above on logger `name` (and its children) while the block runs."""
    logger = logging.getLogger(name)
    capture = _Capture()
    propagate, old_level = logger.propagate, logger.level
    logger.addHandler(capture)
    logger.propagate = False  # nothing reaches the user's console twice
    logger.setLevel(level)
    try:
        yield capture.records
    finally:
        logger.removeHandler(capture)
        logger.propagate, logger.level = propagate, old_level
