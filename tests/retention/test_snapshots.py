"""Finding the filesystem under a store, and warning when snapshots may keep purged footage."""

from __future__ import annotations

from pathlib import Path

import structlog

from redactd.retention.snapshots import filesystem_of, parse_mountinfo, warn_about_snapshots

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 27 0:45 / /srv/nas rw,relatime shared:20 - btrfs /dev/sdb1 rw,space_cache=v2,subvolid=5
41 40 0:46 / /srv/nas/tank rw,relatime - zfs tank/footage rw,xattr
42 27 0:47 / /mnt/share\\040one rw,relatime - cifs //nas/share rw
"""


class TestFilesystems:
    def test_parses_mount_point_type_and_source_with_optional_fields(self) -> None:
        mounts = {m.mount_point: (m.fstype, m.source) for m in parse_mountinfo(MOUNTINFO)}
        assert mounts["/srv/nas"] == ("btrfs", "/dev/sdb1")
        assert mounts["/mnt/share one"] == ("cifs", "//nas/share")

    def test_picks_the_longest_mount_point_holding_the_path(self) -> None:
        assert filesystem_of(Path("/srv/nas/raw"), MOUNTINFO).fstype == "btrfs"
        assert filesystem_of(Path("/srv/nas/tank/raw"), MOUNTINFO).fstype == "zfs"
        assert filesystem_of(Path("/srv/nasty"), MOUNTINFO).fstype == "ext4"

    def test_reads_this_hosts_mountinfo(self, tmp_path: Path) -> None:
        assert filesystem_of(tmp_path).fstype not in ("", "unknown")


class TestWarnings:
    def test_warns_for_stores_on_snapshotting_or_network_filesystems_only(self) -> None:
        stores = {"raw_store": Path("/srv/nas/tank/raw"), "failed_dir": Path("/mnt/share one/failed"),
                  "clean": Path("/var/clean")}
        with structlog.testing.capture_logs() as logs:
            warned = warn_about_snapshots(stores, MOUNTINFO)
        assert warned == ["raw_store", "failed_dir"]
        events = {e["store"]: e for e in logs}
        assert events["raw_store"]["event"] == "snapshots_keep_purged_files"
        assert events["raw_store"]["filesystem"] == "zfs"
        assert events["failed_dir"]["event"] == "purge_reach_unknown"
