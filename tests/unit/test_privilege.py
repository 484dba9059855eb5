"""-w FILE as the user netbpf runs as: never through a symlink, never another user's file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from netbpf import privilege
from netbpf.errors import NetbpfError


def test_own_file_is_truncated_then_written(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"old contents")
    fd = privilege.open_output(str(path))
    os.write(fd, b"new")
    os.close(fd)
    assert path.read_bytes() == b"new"


def test_a_symlink_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / "x.pcap"
    link.symlink_to(target)
    with pytest.raises(NetbpfError, match="symlink"):
        privilege.open_output(str(link))
    with pytest.raises(NetbpfError, match="symlink"):
        privilege.check_output(str(link), None)
    assert target.read_bytes() == b"keep"


def test_a_directory_and_a_missing_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NetbpfError, match="Is a directory"):
        privilege.check_output(str(tmp_path), None)
    with pytest.raises(NetbpfError, match="No such file or directory"):
        privilege.check_output(str(tmp_path / "nosuch" / "x.pcap"), None)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file of another user needs root")
def test_another_users_file_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "theirs.pcap"
    path.write_bytes(b"theirs")
    os.chown(path, 65534, 65534)
    with pytest.raises(NetbpfError, match="another user's file"):
        privilege.open_output(str(path))
    with pytest.raises(NetbpfError, match="another user's file"):
        privilege.check_output(str(path), "root")
    assert path.read_bytes() == b"theirs"


def test_user_argument_must_exist() -> None:
    import argparse

    assert privilege.user_arg("root") == "root"
    with pytest.raises(argparse.ArgumentTypeError, match="no such user"):
        privilege.user_arg("no-such-user-0")
    assert privilege.default_user() in (*privilege.DEFAULT_USERS, "root")
