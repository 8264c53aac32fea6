"""The systemd notify protocol sender, against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket

from redactd.notify import SystemdNotifier


class TestSystemdNotifier:
    def test_sends_key_value_lines_to_a_path_socket(self, tmp_path):
        path = str(tmp_path / "n.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
            notifier.send(READY=1, STATUS="2 running")
            assert sock.recv(100) == b"READY=1\nSTATUS=2 running"

    def test_sends_to_an_abstract_socket_named_with_an_at_sign(self):
        name = f"redactd-test-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(b"\0" + name.encode())
            SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).send(WATCHDOG=1)
            assert sock.recv(100) == b"WATCHDOG=1"

    def test_pings_the_watchdog_at_half_its_interval(self, tmp_path):
        path = str(tmp_path / "n.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.setblocking(False)
            notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
            assert notifier.watchdog_interval == 1.0
            for now in (10.0, 10.5, 11.0, 11.2):
                notifier.ping_if_due(now)
            assert [sock.recv(100), sock.recv(100)] == [b"WATCHDOG=1", b"WATCHDOG=1"]

    def test_is_silent_without_systemd_and_ignores_a_watchdog_meant_for_another_pid(self):
        quiet = SystemdNotifier({})
        assert not quiet.enabled
        quiet.send(READY=1)
        other = SystemdNotifier({"NOTIFY_SOCKET": "/nowhere", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
        assert other.watchdog_interval is None

    def test_a_vanished_socket_does_not_raise(self, tmp_path):
        SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).send(STATUS="x")
