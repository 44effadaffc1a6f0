"""The error policy: strict raises the bad record's DataError, skip hands it back for the rejected sink."""

import pytest

from fr_data.io.errors import DataError
from fr_data.io.policy import ErrorPolicy


def test_strict_raises_the_record_error_and_skip_returns_it():
    error = DataError("a.rec", "key 7", "truncated record")
    with pytest.raises(DataError, match="key 7"):
        ErrorPolicy.STRICT.reject(error)
    assert ErrorPolicy.SKIP.reject(error) is error
    assert ErrorPolicy() == ErrorPolicy.STRICT and ErrorPolicy(skip=True) == ErrorPolicy.SKIP

