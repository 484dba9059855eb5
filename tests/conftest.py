import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def why_nobody_cannot_run_netbpf() -> str | None:
    """Why user nobody cannot run this netbpf (None: it can). Tests that run netbpf as nobody
    (its one-line refusals) need an installation nobody may read: not so for a checkout or a
    venv under a 0700 directory (/root, mktemp -d), where no user but root can run it at all."""
    import os
    import pwd

    from netbpf import privilege

    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    gids = {entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)}
    for path in (Path(sys.executable).parent, privilege.PACKAGE):
        if not privilege.may_enter(path, entry.pw_uid, gids):
            return f"user nobody cannot enter {path} (or a directory above it)"
    return None


def skip_unless_nobody_can_run_netbpf() -> None:
    import pytest

    reason = why_nobody_cannot_run_netbpf()
    if reason:
        pytest.skip(reason)
