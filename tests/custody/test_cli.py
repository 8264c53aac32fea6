"""`redactd keys ...` and `redactd custody ...` as a user runs them."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redactd.cli import main
from redactd.custody import CustodyLog, Event
from redactd.custody.keys import fingerprint, load_private_key, private_pem, write_new
from redactd.log import configure

RAW = "5" * 64
#: The site's original name as its bytes could appear: UTF-8, JSON with \u escapes, a plain stretch.
NAME_FORMS = ["Zoë's party.mp4".encode(), json.dumps("Zoë's party.mp4").encode(), b"s party"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    configure(level="warning", json=True, stream=sys.__stderr__)  # main() logged to capsys' stream
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """A key made with `keys init`, a small log, and a daemon config that points at both."""
    key, log_dir = tmp_path / "keys" / "custody.key", tmp_path / "state" / "custody"
    assert run(capsys, "keys", "init", "--key", str(key))[0] == 0
    with CustodyLog.open(log_dir, key) as log:
        log.append(Event.INGESTED, job_id="job-1", raw_sha256=RAW, original_name="Zoë's party.mp4")
        log.append(Event.PUBLISHED, job_id="job-1", raw_sha256=RAW, output_sha256="6" * 64)
        log.append(Event.FAILED, job_id="job-2", raw_sha256="7" * 64, reason="<b>not a video</b>")
    config = tmp_path / "redactd.yaml"
    config.write_text(f"""version: 1
inboxes: [{{name: default, path: inbox, policy: visual-default}}]
raw_store: raw
clean_dir: clean
review_dir: review
failed_dir: failed
state_dir: state
policies_dir: policies
custody: {{directory: {log_dir}, signing_key: {key}}}
""")
    return {"key": key, "pub": key.with_suffix(".pub"), "log": log_dir, "config": config}


class TestKeysCommands:
    def test_init_prints_the_fingerprint_and_refuses_to_overwrite(self, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
        rc, out, _ = run(capsys, "keys", "init", "--key", str(tmp_path / "k.key"))
        assert rc == 0 and re.search(r"fingerprint sha256:[0-9a-f]{64}", out) and "k.pub" in out
        rc, _, err = run(capsys, "keys", "init", "--key", str(tmp_path / "k.key"))
        assert rc == 2 and "refusing to overwrite" in err

    def test_init_encrypts_with_a_passphrase_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        (tmp_path / "pass").write_text("s3cret\n")
        rc, out, _ = run(capsys, "keys", "init", "--key", str(tmp_path / "k.key"),
                         "--passphrase-file", str(tmp_path / "pass"))
        assert rc == 0 and "passphrase-encrypted" in out
        assert load_private_key(tmp_path / "k.key", b"s3cret")

    def test_rotate_announces_the_new_key_and_the_first_public_key_still_verifies(
            self, site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
        before = fingerprint(load_private_key(site["key"]).public_key())
        rc, out, _ = run(capsys, "keys", "rotate", "--config", str(site["config"]))
        after = fingerprint(load_private_key(site["key"]).public_key())
        assert rc == 0 and before != after and f"announced key {after}" in out
        assert not site["key"].with_name("custody.key.next").exists()
        rc, out, _ = run(capsys, "custody", "verify", str(site["log"]), "--pubkey", str(site["pub"]))
        assert rc == 0 and f"{before} -> {after}" in out

    def test_rotate_completes_a_rotation_interrupted_after_the_announcement(
            self, site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
        new_key = Ed25519PrivateKey.generate()
        write_new(site["key"].with_name("custody.key.next"), private_pem(new_key, None))
        with CustodyLog.open(site["log"], site["key"]) as log:
            log.rotate_key(new_key)  # ...and the crash comes before the key files are swapped
        rc, out, _ = run(capsys, "keys", "rotate", "--key", str(site["key"]), "--log-dir", str(site["log"]))
        assert rc == 0 and "completing the interrupted rotation" in out
        assert fingerprint(load_private_key(site["key"]).public_key()) == fingerprint(new_key.public_key())
        CustodyLog.open(site["log"], site["key"]).close()  # the daemon can sign again


class TestCustodyCommands:
    def test_verify_passes_an_intact_log_taking_paths_from_the_config(
            self, site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
        rc, out, _ = run(capsys, "--config", str(site["config"]), "custody", "verify")
        assert rc == 0 and "custody log OK: 4 entries in 1 segment(s), 1 checkpoint(s)" in out

    def test_verify_exits_7_naming_the_first_bad_entry(self, site: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
        segment = site["log"] / "custody-000001.jsonl"
        segment.write_bytes(segment.read_bytes().replace(b'"failed"', b'"purged"'))
        rc, _, err = run(capsys, "custody", "verify", str(site["log"]), "--pubkey", str(site["pub"]))
        assert rc == 7
        assert "custody-000001.jsonl line 3 (seq 2): signature does not verify" in err
        assert "2 entries verified before the problem" in err

    def test_verify_since_a_kept_checkpoint_proves_the_log_only_grew(
            self, site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        kept = tmp_path / "kept.json"
        kept.write_bytes((site["log"] / "checkpoint.json").read_bytes())
        with CustodyLog.open(site["log"], site["key"]) as log:
            log.append(Event.PURGED, job_id="job-1", raw_sha256=RAW)
        rc, out, _ = run(capsys, "custody", "verify", str(site["log"]), "--pubkey", str(site["pub"]),
                         "--since", str(kept))
        assert rc == 0 and "the tree grew from 3 to 5 entries" in out

    def test_show_prints_one_files_timeline_with_its_original_name(
            self, site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
        rc, out, _ = run(capsys, "custody", "show", RAW, "--log-dir", str(site["log"]))
        assert rc == 0 and "2 entries for" in out
        assert re.search(r"#0 +ingested +job=job-1 raw=555555555555… name=\"Zoë's party.mp4\"", out)
        assert "published" in out and "failed" not in out
        assert run(capsys, "custody", "show", "job-2", "--log-dir", str(site["log"]))[0] == 0
        rc, _, err = run(capsys, "custody", "show", "nothing", "--log-dir", str(site["log"]))
        assert rc == 7 and "no custody entry mentions nothing" in err
        assert "Traceback" not in err  # an answer, not a fault

    def test_the_human_message_comes_before_any_traceback(
            self, site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        rc, _, err = run(capsys, "custody", "bundle", "9" * 64, "-o", str(tmp_path / "b.json"),
                         "--log-dir", str(site["log"]))
        assert rc == 7
        assert err.splitlines()[0].startswith("redactd: error: ")

    def test_show_takes_a_unique_job_id_prefix_as_every_job_command_does(
            self, site: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
        rc, out, _ = run(capsys, "custody", "show", "job-2", "--config", str(site["config"]))
        assert rc == 0 and "1 entries" in out
        rc, out, err = run(capsys, "custody", "show", "job-", "--config", str(site["config"]))
        assert rc == 7 and "ambiguous" in err and "Traceback" not in err
        with CustodyLog.open(site["log"], site["key"]) as log:
            log.append(Event.INGESTED, job_id="01a2390365a24b5a0db86a68", raw_sha256="8" * 64)
        rc, out, _ = run(capsys, "custody", "show", "01a2390365", "--config", str(site["config"]))
        assert rc == 0 and "job=01a2390365a24b5a0db86a68" in out

    def test_bundle_and_verify_bundle_round_trip_and_catch_an_edit(
            self, site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out_path = tmp_path / "bundle.json"
        rc, out, _ = run(capsys, "custody", "bundle", RAW, "-o", str(out_path), "--log-dir", str(site["log"]))
        assert rc == 0 and "2 entries" in out
        rc, out, _ = run(capsys, "custody", "verify-bundle", str(out_path), "--pubkey", str(site["pub"]))
        assert rc == 0 and "bundle OK: 2 entries" in out
        bundle = json.loads(out_path.read_text())
        bundle["entries"][0]["entry"]["name_commit"] = "0" * 64  # commit to some other name
        out_path.write_text(json.dumps(bundle))
        rc, _, err = run(capsys, "custody", "verify-bundle", str(out_path), "--pubkey", str(site["pub"]))
        assert rc == 7 and "entry 0 (ingested): its inclusion proof does not lead" in err

    def test_a_bundle_leaves_original_names_out_unless_asked_and_verify_bundle_checks_given_ones(
            self, site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        plain, named = tmp_path / "bundle.json", tmp_path / "named.json"
        rc, out, _ = run(capsys, "custody", "bundle", RAW, "-o", str(plain), "--log-dir", str(site["log"]))
        assert rc == 0 and "without original file names" in out
        assert not any(form in plain.read_bytes() for form in NAME_FORMS)
        rc, out, _ = run(capsys, "custody", "verify-bundle", str(plain), "--pubkey", str(site["pub"]))
        assert rc == 0 and "bundle OK: 2 entries" in out and "original names" not in out
        rc, out, _ = run(capsys, "custody", "bundle", RAW, "-o", str(named), "--log-dir", str(site["log"]),
                         "--with-names")
        assert rc == 0 and "with original file names (personal data)" in out
        assert "Zoë's party.mp4".encode() in named.read_bytes() and stat.S_IMODE(named.stat().st_mode) == 0o600
        rc, out, _ = run(capsys, "custody", "verify-bundle", str(named), "--pubkey", str(site["pub"]))
        assert rc == 0 and "bundle OK: 2 entries" in out
        assert "original names: 1, each opens its entry's signed name commitment" in out
        bundle = json.loads(named.read_text())
        for edit in ({"name": "Zoë's party.MP4"}, {"salt": "0" * 32}):
            item = bundle["entries"][0]
            named.write_text(json.dumps({**bundle, "entries": [{**item, **edit}, *bundle["entries"][1:]]}))
            rc, _, err = run(capsys, "custody", "verify-bundle", str(named), "--pubkey", str(site["pub"]))
            assert rc == 7 and "entry 0 (ingested): the original name and salt given do not open" in err, edit
        named.write_text(json.dumps({**bundle, "entries": [bundle["entries"][0], {
            **bundle["entries"][1], "name": "Zoë's party.mp4", "salt": bundle["entries"][0]["salt"]}]}))
        rc, _, err = run(capsys, "custody", "verify-bundle", str(named), "--pubkey", str(site["pub"]))
        assert rc == 7 and "entry 1 (published): the bundle gives an original name, but the entry commits to none" in err

    def test_the_log_directory_holds_no_name_but_show_and_report_give_it_from_the_name_store(
            self, site: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        stored = b"".join(p.read_bytes() for p in site["log"].iterdir() if p.is_file())
        assert not any(form in stored for form in NAME_FORMS)
        assert "Zoë's party.mp4".encode() in (site["log"].parent / "custody-names.jsonl").read_bytes()
        today = json.loads((site["log"] / "checkpoint.json").read_bytes())["time"][:10]
        rc, out, _ = run(capsys, "--config", str(site["config"]), "custody", "report", "--from", today,
                         "--to", today, "-o", str(tmp_path / "r.html"), "--with-names")
        assert rc == 0 and "Zoë&#x27;s party.mp4" in (tmp_path / "r.html").read_text()
        # An officer's copy of the log directory alone: the entries verify, the names are not there.
        copy = tmp_path / "officer" / "custody"
        shutil.copytree(site["log"], copy)
        rc, out, err = run(capsys, "custody", "show", RAW, "--log-dir", str(copy))
        assert rc == 0 and "name='name not available'" in out and "Zoë" not in out
        assert "no name store at" in err and "custody-names.jsonl" in err
        shutil.copy(site["log"].parent / "custody-names.jsonl", copy.parent)
        rc, out, err = run(capsys, "custody", "show", RAW, "--log-dir", str(copy))
        assert rc == 0 and "name=\"Zoë's party.mp4\"" in out and not err

    def test_report_writes_an_html_page(self, site: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        today = json.loads((site["log"] / "checkpoint.json").read_bytes())["time"][:10]
        rc, out, _ = run(capsys, "--config", str(site["config"]), "custody", "report", "--from", today,
                         "--to", today, "-o", str(tmp_path / "r.html"))
        page = (tmp_path / "r.html").read_text()
        assert rc == 0 and "log verified" in out and "Log verified" in page
        assert "Zoë" not in page and "&lt;b&gt;not a video&lt;/b&gt;" in page

    def test_missing_paths_without_a_config_are_a_clear_error(self, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
        rc, _, err = run(capsys, "--config", str(tmp_path / "none.yaml"), "custody", "verify")
        assert rc == 2 and "--log-dir not given, and no config to take it from" in err

    def test_the_installed_command_runs_in_a_fresh_process(self, site: dict[str, Path]) -> None:
        done = subprocess.run([sys.executable, "-m", "redactd", "custody", "verify", str(site["log"]),
                               "--pubkey", str(site["pub"])], capture_output=True, text=True, timeout=60, check=False,
                              env={"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        assert "custody log OK" in done.stdout
