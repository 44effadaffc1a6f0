"""The experiment draws kept in docs/results/draws read as pool members, and the draws of one config pool:
the pooled tables in docs/results.md can be rebuilt from them (``tools/experiment_pool.py``). A folder
is named CONFIG-seedS; the draws of one CONFIG must hold one recipe."""

from __future__ import annotations

from collections import defaultdict

from hardmine.experiment.pool import check_members, member_files, read_goal, read_member
from tests.repo import ROOT

DRAWS = ROOT / "docs" / "results" / "draws"


def test_every_kept_draw_is_a_pool_member_and_the_draws_of_a_config_pool():
    folders = sorted(p for p in DRAWS.iterdir() if p.is_dir())
    assert folders, "no kept draws"
    by_config = defaultdict(list)
    for folder in folders:
        assert sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) == sorted(member_files(folder))
        member = read_member(folder, read_goal(folder).metric)
        by_config[folder.name.rsplit("-", 1)[0]].append(member)  # fan-seed3: the draws of "fan"
        assert "/work" not in (folder / "stages" / "train.json").read_text()
    for members in by_config.values():
        if len(members) > 1:
            check_members(members)  # one recipe, other backbones
