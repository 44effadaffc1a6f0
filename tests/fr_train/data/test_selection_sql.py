"""A training selection's SQL runs on the locked connection: no temp folder to read, no echo of a file,
and the memory and time limits of ``selection.sql_memory_limit`` / ``sql_timeout_s``."""

from __future__ import annotations

import pytest

from fr_data.io.errors import ConfigError
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import resolve_selection
from tests.fr_train.data.builders import make_tiny_data

SECRET = "s3cr3t-content-7731"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text(SECRET + "\n")
    return tmp_path


def _config_error(data, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_selection(SelectionConfig(**kw), data.shards, data.run)
    message = str(info.value)
    assert "\n" not in message and SECRET not in message
    return message


@pytest.mark.parametrize("where", [
    "key IN (SELECT content FROM read_text('.tmp/secret.txt'))",
    "CAST((SELECT content FROM read_text('.tmp/secret.txt')) AS INTEGER) = label",  # used to echo the file
])
def test_a_where_cannot_read_the_temp_folder(data, cwd, where):
    assert _config_error(data, where=where).startswith("selection.where: query refused")


def test_the_time_limit_stops_a_where(data, cwd):
    endless = "label < (SELECT count(*) FROM range(10000000) a, range(10000000) b WHERE hash(a.range, b.range) = 0)"
    message = _config_error(data, where=endless, sql_timeout_s=0.2)
    assert message.startswith("selection.where: query stopped: it ran past the time limit of 0.2 s")


def test_the_memory_limit_stops_a_query(data, cwd):
    message = _config_error(data, query="SELECT list(range) AS key FROM range(1000000000)",
                            sql_memory_limit="100MB")
    assert message.startswith("selection.query: query stopped: it needs more memory than the limit of 100MB")
