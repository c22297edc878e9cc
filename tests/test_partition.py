"""A partition between two groups of agents (real `bzzz run` processes in network
namespaces, devhub reachable from both sides): the link is cut for longer than twice the
claim lease while tasks keep coming, then restored."""

import pytest

from bzzz.testing.partition import Partition, Run, overlapping_pairs, read_runs


def test_overlap_counting():
    runs = [Run(1, "a", 0.0, 2.0), Run(1, "b", 1.0, 3.0), Run(1, "c", 3.0, 4.0),
            Run(2, "a", 0.0, 1.0), Run(2, "b", 1.0, 2.0),   # back to back: not at once
            Run(3, "a", 0.0, None), Run(3, "b", 100.0, 101.0)]  # unfinished: forever
    assert overlapping_pairs(runs) == 2


def test_marker_file_pairs_starts_and_ends(tmp_path):
    path = tmp_path / "runs.txt"
    path.write_text("5 start 10.0 a0 77\n6 start 10.5 b0 78\n5 end 12.0 a0 77\nnoise\n")
    runs = read_runs(path)
    assert [(r.issue, r.node, r.start, r.end) for r in runs] == [
        (5, "a0", 10.0, 12.0), (6, "b0", 10.5, None)]


@pytest.mark.netns
def test_a_cut_longer_than_two_leases_runs_no_task_twice_and_the_meshes_merge(lab):
    p = Partition(lab, per_group=2, tasks=12, lease=3.0)
    try:
        got = p.run()
    finally:
        p.close()
        print("\n".join(p.log))
    print({k: v for k, v in got.items() if k != "timeline"})
    assert got["cut_seconds"] > 2 * got["lease"]
    assert got["filed"] == got["tasks"] and not got["feed_errors"]
    assert got["concurrent_runs"] == 0
    assert got["run_twice"] == 0 and got["lost"] == 0 and got["unfinished_runs"] == 0
    assert got["result_comments_not_one"] == 0
    # GitHub stayed reachable: both sides kept taking tasks while they could not see
    # each other
    assert all(n > 0 for n in got["runs_started_during_cut"].values()), got
    assert got["merge_seconds"] <= 45
