"""netbpf's directories: made by netbpf (root, 0700), refused when someone else made them."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from netbpf.bpf import fs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="directories of root and of another user need root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_level_is_made_root_0700(tmp_path: Path) -> None:
    path = fs.owned_dir(tmp_path / "a" / "b" / "c", base=tmp_path)
    for level in (tmp_path / "a", tmp_path / "a" / "b", path):
        assert os.lstat(level).st_uid == 0 and mode(level) == 0o700


def test_a_root_directory_left_0755_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(mode=0o755)
    fs.owned_dir(tmp_path / "a" / "b", base=tmp_path)
    assert mode(tmp_path / "a") == 0o700


@pytest.mark.parametrize("hostile", ["other user", "symlink", "world-writable"])
def test_a_level_someone_else_made_is_refused(tmp_path: Path, hostile: str) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    level = tmp_path / "a"
    if hostile == "other user":
        level.mkdir()
        os.chown(level, 65534, 65534)
    elif hostile == "symlink":
        level.symlink_to(target)
    else:
        level.mkdir()
        level.chmod(0o777)
    with pytest.raises(fs.NotOurs, match=str(level)) as refused:
        fs.owned_dir(level / "b", base=tmp_path)
    assert "\n" not in str(refused.value)
    assert not (target / "b").exists()  # nothing was made through the symlink
    with pytest.raises(fs.NotOurs):
        fs.owned_dir(level, create=False, base=tmp_path)


def test_reading_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fs.owned_dir(tmp_path / "nosuch", create=False, base=tmp_path)
    assert not (tmp_path / "nosuch").exists()
