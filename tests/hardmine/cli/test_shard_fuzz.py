"""hardmine shard on 40 seeded damaged RecordIO copies (the rules: tests/hardmine/cli/recordio_fuzz.py;
``benchmarks/fuzz_recordio.py`` runs hundreds more)."""

from __future__ import annotations

from tests.hardmine.cli.recordio_fuzz import IDX_MUTATIONS, REC_MUTATIONS, fuzz, summary


def test_forty_damaged_copies_keep_every_intact_record(tmp_path):
    outcomes = fuzz(tmp_path, range(40))
    problems = [(o.case.seed, o.case.mutations, o.problems) for o in outcomes if o.problems]
    assert problems == []
    report = summary(outcomes)
    assert set(report["mutations"]) == set(REC_MUTATIONS + IDX_MUTATIONS)  # every kind was tried
    assert report["intact_records_lost"] == 0 and report["intact_records"] > 300
    assert report["strict_exit"].get(2, 0) > 10 and report["skip_corrupt_exit"].get(0, 0) >= 38
    assert report["sharded_beyond_intact"].get("recovered", 0) > 0  # records of bad index lines came back
