"""read_json_object: missing file, valid object, bad JSON and non-objects name the file."""

import pytest

from fr_data.io.errors import DataError
from fr_data.io.jsonfile import read_json_object


def test_missing_file_is_empty_and_an_object_is_returned(tmp_path):
    assert read_json_object(tmp_path / "run.json") == {}
    (tmp_path / "run.json").write_text('{"a": [1, 2]}')
    assert read_json_object(tmp_path / "run.json") == {"a": [1, 2]}


@pytest.mark.parametrize("text, reason", [("{broken", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_bad_content_names_the_file(tmp_path, text, reason):
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(DataError, match=reason) as err:
        read_json_object(path)
    assert "run.json" in str(err.value)
