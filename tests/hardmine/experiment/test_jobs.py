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


def pid_or_sleep(seconds: int) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_leaving_early_stops_the_workers_instead_of_waiting_for_them():
    # the caller stops after the first result (as on an error, Ctrl-C or SIGTERM); the other jobs would
    # sleep for ten minutes: without the stop this test would hang, with it every worker is gone
    jobs = run_jobs(pid_or_sleep, [(0,), (600,), (600,)], workers=2)
    _, pid = next(jobs)
    jobs.close()
    assert not _alive(pid)
