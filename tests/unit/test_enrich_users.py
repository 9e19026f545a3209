"""User and group names from the real passwd/group databases, with change detection."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from sysward.enrich import UserDb


def test_names_of_known_and_unknown_ids() -> None:
    db = UserDb()
    assert db.user_name(0) == "root" and db.group_name(0) == "root"
    me = os.getuid()
    assert db.user_name(me) == pwd.getpwuid(me).pw_name
    unknown = 3_999_999_999
    assert db.user_name(unknown) == "" and db.group_name(unknown) == ""
    lookups = db.lookups
    for _ in range(100):
        db.user_name(0)
        db.user_name(unknown)
    assert db.lookups == lookups  # cached, misses included


def test_cache_drops_when_database_file_changes(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("x\n")
    db = UserDb(passwd_path=str(passwd), group_path=str(tmp_path / "group"),
                check_interval_s=0.0)
    db.user_name(0)
    passwd.write_text("x\ny\n")
    db.user_name(0)
    assert db.refreshes == 1
    db.user_name(0)
    assert db.refreshes == 1
