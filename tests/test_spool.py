"""The serve spool with several groups in flight: the checkpoint never passes a group the store lacks.

The writer inserts two groups at once, so they can finish in either order; these tests use the
real spool files (segments and checkpoint on disk) and reopen the directory as a restart would.
"""

from __future__ import annotations

import json
from pathlib import Path

from driftline.collector.receiver._spool import Spool


def _spool_with(directory: Path, batches: int) -> Spool:
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=256)  # small segments: several files
    for n in range(batches):
        spool.append(1, f"batch {n}".encode() * 20, items=10)
    return spool


def test_a_later_group_stored_first_does_not_move_the_checkpoint_past_an_earlier_one(tmp_path: Path) -> None:
    spool = _spool_with(tmp_path, 6)
    first, second = spool.read(0, max_bytes=1), spool.read(1, max_bytes=1 << 20)
    spool.begin(first[0].seq, first[-1].seq)
    spool.begin(second[0].seq, second[-1].seq)
    spool.release(second)  # the later group's insert finished first
    assert spool.stored_seq == 0 and spool.backlog_items == 10
    spool.close()

    restarted = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=256)  # kill -9 here: both groups replay
    assert restarted.stored_seq == 0 and restarted.intents == [(1, 1), (2, 6)]
    assert [r.seq for r in restarted.read_range(1, 1)] == [1]
    assert [r.seq for r in restarted.read_range(2, 6)] == [2, 3, 4, 5, 6]
    restarted.close()


def test_once_the_earlier_group_is_stored_the_checkpoint_passes_both_and_spent_segments_go(tmp_path: Path) -> None:
    spool = _spool_with(tmp_path, 6)
    segments_before = len(list(tmp_path.glob("seg-*.log")))
    first, second = spool.read(0, max_bytes=1), spool.read(1, max_bytes=1 << 20)
    spool.begin(first[0].seq, first[-1].seq)
    spool.begin(second[0].seq, second[-1].seq)
    spool.release(second)
    spool.release(first)
    assert spool.stored_seq == 6 and spool.intents == [] and spool.backlog_items == 0 and spool.backlog_bytes == 0
    assert segments_before > 1 and len(list(tmp_path.glob("seg-*.log"))) == 1
    spool.close()
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint == {"seq": 6, "intents": []}


def test_a_checkpoint_written_before_groups_overlapped_still_replays_its_intent(tmp_path: Path) -> None:
    _spool_with(tmp_path, 3).close()
    (tmp_path / "checkpoint.json").write_text(json.dumps({"seq": 1, "intent": [2, 3]}))
    restarted = Spool(tmp_path, max_bytes=1 << 20)
    assert restarted.stored_seq == 1 and restarted.intents == [(2, 3)] and restarted.backlog_items == 20
    restarted.close()
