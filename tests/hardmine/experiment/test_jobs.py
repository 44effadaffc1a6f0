"""Jobs: the same results in worker processes as in this one; bad input comes back as a JobError."""

from __future__ import annotations

import pytest

from fr_data.io.errors import DataError
from hardmine.experiment.jobs import JobError, run_jobs


def square(x: int) -> int:
    return x * x


def refuse(path: str) -> None:
    raise DataError(path, "row 3", "bad value")


@pytest.mark.parametrize("workers", [1, 2])
def test_every_job_runs_once_whatever_the_workers(workers):
    done = dict(run_jobs(square, [(2,), (3,), (4,)], workers))
    assert done == {0: 4, 1: 9, 2: 16}


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_input_in_a_job_is_a_job_error_with_its_message(workers):
    with pytest.raises(JobError, match=r"data.bin \(row 3\): bad value"):
        list(run_jobs(refuse, [("data.bin",), ("data.bin",)], workers))
