"""Atomic outputs: a failed write leaves neither a partial file nor a temporary one."""

from __future__ import annotations

import pytest

from rnce.io import atomic_path, write_text


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "sub" / "table.tsv"
    write_text("old\n", target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith("table.tsv") and tmp.parent == target.parent
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.tsv"]
    write_text("new\n", target)
    assert target.read_text() == "new\n"
