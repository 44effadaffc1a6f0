"""What a stage does with a bad record: one policy object, made once per command and handed to every
stage that can meet one (a source opening its container, the shard writer reading records).

``ErrorPolicy.STRICT`` (the default) stops at the first bad record with its ``DataError`` (file and
record named); ``ErrorPolicy.SKIP`` (``hardmine shard --skip-corrupt``) leaves it out and lists it in
the output's rejected-records sink (``rejected.parquet`` of the shard folder,
:mod:`fr_data.folders.shard_folder`), so that one flag can never be set in one place and not the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fr_data.io.errors import DataError

__all__ = ["ErrorPolicy"]


@dataclass(frozen=True)
class ErrorPolicy:
    """Raise on a bad record (``skip`` False) or leave it out and list it as rejected (``skip`` True)."""

    skip: bool = False

    STRICT: ClassVar[ErrorPolicy]
    SKIP: ClassVar[ErrorPolicy]

    def reject(self, error: DataError) -> DataError:
        """Raise ``error`` under the strict policy; under skip, return it for the rejected-records sink."""
        if not self.skip:
            raise error
        return error


ErrorPolicy.STRICT = ErrorPolicy(skip=False)
ErrorPolicy.SKIP = ErrorPolicy(skip=True)
