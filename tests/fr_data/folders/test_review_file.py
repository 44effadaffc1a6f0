"""review.csv: parsing, validation errors naming file and line, and a byte-exact round trip."""

from __future__ import annotations

import pytest

from fr_data.folders.review_file import (
    MAX_LINES_PER_ROW,
    REVIEW_SCHEMA,
    Decision,
    format_review,
    merge_decision,
    parse_review,
    parse_review_lines,
    read_review,
    write_review,
)
from fr_data.io.errors import DataError


def test_sample_and_merge_rows_parse_into_kinds_actions_and_labels(tmp_path):
    path = tmp_path / "review.csv"
    path.write_text("key,decision\r\na,drop\r\nb,keep\r\nc,merge:3:7\r\nd,keep:9:2\r\n\r\n")
    review = read_review(path)
    assert review.keys("drop") == ["a"] and review.keys("keep") == ["b"]
    assert review.pairs("merge") == [(3, 7)] and review.pairs("keep") == [(2, 9)]
    assert review.counts() == {"keep": 1, "drop": 1, "relabel": 0, "merge": 1, "separate": 1}
    table = review.table()
    assert table.schema.equals(REVIEW_SCHEMA)
    assert table.column("line").to_pylist() == [2, 3, 4, 5]
    assert table.column("decision").to_pylist() == ["drop", "keep", "merge:3:7", "keep:9:2"]
    assert table.column("label").to_pylist() == [None, None, 3, 9]


def test_keys_with_commas_quotes_and_newlines_round_trip(tmp_path):
    decisions = [Decision('a,b "c"', "sample", "drop"), Decision("line\nbreak", "sample", "keep"),
                 Decision("x/y z", "merge", "merge", 5, 1)]
    path = tmp_path / "r.csv"
    write_review(path, decisions)
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("key,decision,section\r\n") and '"a,b ""c"""' in text
    back = read_review(path).decisions
    assert [(d.key, d.decision) for d in back] == [(d.key, d.decision) for d in decisions]
    assert format_review(back) == text


def test_a_byte_order_mark_is_accepted():
    assert parse_review("\ufeffkey,decision\nk,drop\n").keys("drop") == ["k"]


@pytest.mark.parametrize("text, line, message", [
    ("", "line 1", "header"),
    ("key;decision\nk;drop\n", "line 1", "header"),
    ("key,decision\nk,delete\n", "line 2", "is not keep, drop"),
    ("key,decision\nk,drop\n,keep\n", "line 3", "empty key"),
    ("key,decision\nk,drop,extra\n", "line 2", "expected 2 cells"),
    ("key,decision\nk,merge:1\n", "line 2", "is not keep, drop"),
    ("key,decision\nk,merge:a:2\n", "line 2", "integers"),
    ("key,decision\nk,merge:4:4\n", "line 2", "with itself"),
    ("key,decision\nk,split:1:2\n", "line 2", "is not keep, drop"),
    ("key,decision\nk,drop\nj,keep\nk,keep\n", "line 4", "already decided on line 2"),
    ("key,decision\nk,merge:1:2\nj,keep:2:1\n", "line 3", "already decided on line 2"),
])
def test_bad_rows_name_the_file_and_line(text, line, message):
    with pytest.raises(DataError, match=message) as err:
        parse_review(text, "some/review.csv")
    assert err.value.path == "some/review.csv" and err.value.where == line


def test_a_key_may_have_a_sample_row_and_a_merge_row():
    review = parse_review("key,decision\nk,drop\nk,merge:1:2\n")
    assert review.keys("drop") == ["k"] and review.pairs("merge") == [(1, 2)]


def test_missing_and_non_utf8_files_are_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_review(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"key,decision\n\xff\xfe,drop\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_review(bad)


def test_merge_decision_cell():
    assert merge_decision("keep", 12, 40) == "keep:12:40"
    assert Decision("k", "merge", "merge", 40, 12).pair == (12, 40)


def _lines_counted(head: list[str], filler: str):
    """``head`` then ``filler`` forever, counting what the parser took: proof it stopped early."""
    taken = []

    def lines():
        for line in head:
            taken.append(line)
            yield line
        while True:
            taken.append(filler)
            yield filler
    return lines(), taken


@pytest.mark.parametrize("bad, reason", [
    ("k,delete\n", "decision 'delete' is not keep"),
    ("k,drop,extra\n", "expected 2 cells"),
    ("k\x00,drop\n", "a NUL character"),
])
def test_reading_stops_at_the_first_bad_line(bad, reason):
    lines, taken = _lines_counted(["key,decision\n", bad], "x,drop\n")
    with pytest.raises(DataError, match=reason) as err:
        parse_review_lines(lines, "r.csv")
    assert err.value.where == "line 2" and len(taken) == 2


def test_an_unterminated_quote_is_named_with_its_line():
    lines, taken = _lines_counted(["key,decision\n", "a,drop\n", '"k,drop\n'], "x,drop\n")
    with pytest.raises(DataError) as err:
        parse_review_lines(lines, "r.csv")
    assert err.value.where == "line 3" and err.value.reason.startswith("unterminated quote")
    assert len(taken) == 3 + MAX_LINES_PER_ROW  # the row may span MAX_LINES_PER_ROW lines, not one more
    with pytest.raises(DataError, match="unterminated quote") as err:  # at the end of the text
        parse_review('key,decision\nk,drop\n"j,keep\n')
    assert err.value.where == "line 3"


@pytest.mark.parametrize("key", ["k\x00", "\x00k", "a\x00b"])
def test_a_key_with_a_nul_is_refused_not_changed(tmp_path, key):
    path = tmp_path / "review.csv"
    write_review(path, [Decision("ok", "sample", "keep"), Decision(key, "sample", "drop")])
    with pytest.raises(DataError, match="NUL") as err:
        read_review(path)
    assert err.value.where == "line 3"


def test_a_large_file_bad_on_line_2_is_not_read_further(tmp_path):
    # the tail is not UTF-8: reading the whole file (as before) reports that instead of line 2
    path = tmp_path / "review.csv"
    path.write_bytes(b"key,decision\nk,delete\n" + b"x,drop\n" * 300_000 + b"\xff\xfe,drop\n")
    with pytest.raises(DataError) as err:
        read_review(path)
    assert err.value.where == "line 2" and "decision 'delete'" in err.value.reason


def test_a_bad_byte_is_named_by_line_and_offset(tmp_path):
    path = tmp_path / "review.csv"
    path.write_bytes(b"key,decision\nk,drop\nj\xff,keep\n")
    with pytest.raises(DataError, match="not UTF-8") as err:
        read_review(path)
    assert err.value.where == "line 3, byte 21"


def test_a_source_path_column_round_trips_and_two_column_files_stay_readable(tmp_path):
    decisions = [Decision("000000001", "sample", "drop", source_path="0000045/002.jpg"),
                 Decision("000000007", "sample", "keep"),
                 Decision("000000010", "merge", "merge", 2, 3, source_path="0000102/001.jpg")]
    path = tmp_path / "review.csv"
    write_review(path, decisions)
    assert path.read_text().splitlines()[:2] == ["key,decision,section,source_path", "000000001,drop,,0000045/002.jpg"]
    review = read_review(path)
    assert [d.source_path for d in review.decisions] == ["0000045/002.jpg", None, "0000102/001.jpg"]
    assert review.table().column("source_path").to_pylist() == ["0000045/002.jpg", None, "0000102/001.jpg"]
    assert format_review(review.decisions) == path.read_bytes().decode()
    old = parse_review("key,decision\na,drop\n")
    assert old.decisions[0].source_path is None and format_review(old.decisions) == "key,decision,section\r\na,drop,\r\n"


def test_a_row_with_a_cell_too_many_or_few_names_its_line():
    with pytest.raises(DataError, match=r"line 3.*expected 3 cells"):
        parse_review("key,decision,source_path\na,drop,x.jpg\nb,drop\n")
    with pytest.raises(DataError, match=r"line 2.*expected 2 cells"):
        parse_review("key,decision\na,drop,x.jpg\n")


def test_sections_and_relabels_parse_and_round_trip_exactly():
    text = ("key,decision,section\r\nk,keep,suspects\r\nk,drop,duplicates\r\nj,relabel:7,suspects\r\n"
            "m,merge:1:2,merges\r\nold,drop,\r\n")
    review = parse_review(text)
    assert [(d.key, d.action, d.section) for d in review.decisions] == [
        ("k", "keep", "suspects"), ("k", "drop", "duplicates"), ("j", "relabel", "suspects"),
        ("m", "merge", "merges"), ("old", "drop", "")]
    assert review.samples("relabel")[0].label == 7 and review.keys("drop") == ["k", "old"]
    assert review.counts() == {"keep": 1, "drop": 2, "relabel": 1, "merge": 1, "separate": 0}
    assert review.table().column("section").to_pylist() == ["suspects", "duplicates", "suspects", "merges", None]
    assert format_review(review.decisions) == text


def test_an_old_two_column_file_reads_as_rows_without_a_section():
    review = parse_review("key,decision\nk,keep\nj,drop\n")
    assert [(d.key, d.action, d.section) for d in review.decisions] == [("k", "keep", ""), ("j", "drop", "")]


@pytest.mark.parametrize("text, where, reason", [
    ("key,decision,section\nk,keep,suspects\nk,drop,suspects\n", "line 3", "already decided on line 2"),
    ("key,decision,section\nk,relabel:1,suspects\nk,relabel:2,quality\n", "line 3", "already decided on line 2"),
    ("key,decision,section\nk,relabel:x,suspects\n", "line 2", "labels must be integers"),
    ("key,decision,section\nk,keep,Bad Name\n", "line 2", "not a section name"),
    ("key,decision,section\nk,keep\n", "line 2", "expected 3 cells"),
])
def test_bad_section_rows_name_the_line(text, where, reason):
    with pytest.raises(DataError, match=f"{where}.*{reason}"):
        parse_review(text, "r.csv")
