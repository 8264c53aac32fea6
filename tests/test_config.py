"""Config and policy files: the examples validate, wrong files get errors that name the problem."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redactd.config import check_config, load_config, parse_size
from redactd.custody.keys import init_key
from redactd.errors import ConfigError
from redactd.policy import Mode, PolicySet, RedactionPolicy, load_policy, policy_hash, resolve_policy
from tests.conftest import TEST_POLICIES


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redactd", *args], check=False, capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path, repo: Path, text: str) -> Path:
    cfg = tmp_path / "redactd.yaml"
    cfg.write_text(text.replace("POLICIES", str(TEST_POLICIES)))
    return cfg


BASE = """\
version: 1
inboxes:
  - name: cams
    path: inbox
    policy: metadata-only
raw_store: raw
clean_dir: clean
review_dir: review
failed_dir: failed
state_dir: state
policies_dir: POLICIES
custody:
  directory: state/custody
  signing_key: keys/custody.key
"""


class TestExampleFiles:
    def test_example_config_and_every_policy_validate(self, repo):
        cfg, policies = check_config(repo / "etc" / "redactd.yaml")
        assert cfg.inboxes[0].policy in policies.redaction
        assert cfg.retention is not None and cfg.retention.policy in policies.retention

    def test_every_policy_has_id_and_version(self, repo):
        for path in (repo / "policies").glob("*.yaml"):
            pol = load_policy(path)
            assert pol.id and pol.version >= 1

    def test_config_check_command_prints_what_it_validated(self, repo, tmp_path):
        (tmp_path / "etc").mkdir()
        config = tmp_path / "etc" / "redactd.yaml"
        shutil.copy(repo / "etc" / "redactd.yaml", config)
        shutil.copytree(repo / "policies", tmp_path / "policies")
        proc = run_cli("config", "check", "--config", str(config))
        assert proc.returncode == 2 and "no custody signing key" in proc.stderr  # fail closed
        init_key(tmp_path / "var" / "keys" / "custody.key")  # what `make run` does first
        proc = run_cli("config", "check", "--config", str(config))
        assert proc.returncode == 0, proc.stderr
        shipped = load_policy(repo / "policies" / "visual-default.yaml")  # whatever version the operator has
        assert "OK" in proc.stdout and f"policy visual-default v{shipped.version}" in proc.stdout
        assert "custody: " in proc.stdout and "signing key" in proc.stdout


    def test_the_shipped_worker_config_loads_and_maps_the_daemons_paths(self, repo):
        from redactd.config import load_worker_config

        cfg = load_worker_config(repo / "etc" / "redactd-worker.yaml")
        assert cfg.to_worker(Path("/srv/redactd/raw/j.mp4")) == Path("/mnt/redactd/raw/j.mp4")
        assert cfg.device == "cpu" and cfg.concurrency == 1


class TestConfigErrors:
    def test_relative_paths_resolve_against_the_config_directory(self, tmp_path, repo):
        cfg = load_config(write_config(tmp_path, repo, BASE))
        assert cfg.raw_store == tmp_path / "raw"
        assert cfg.custody.signing_key == tmp_path / "keys" / "custody.key"

    def test_bad_value_names_file_line_key_value_and_expectation(self, tmp_path, repo):
        cfg = write_config(tmp_path, repo, BASE + "workers: lots\n")
        with pytest.raises(ConfigError) as err:
            load_config(cfg)
        msg = str(err.value)
        assert str(cfg) in msg and "line 15" in msg and "'workers'" in msg and "'lots'" in msg
        assert "valid integer" in msg

    def test_misspelt_key_is_named_with_its_line(self, tmp_path, repo):
        cfg = write_config(tmp_path, repo, BASE + "limits:\n  settle_secnds: 5\n")
        with pytest.raises(ConfigError, match=r"line 16, key 'limits.settle_secnds': unknown key"):
            load_config(cfg)

    def test_unknown_policy_reference_lists_the_known_ones(self, tmp_path, repo):
        cfg = write_config(tmp_path, repo, BASE.replace("policy: metadata-only", "policy: nope"))
        with pytest.raises(ConfigError, match=r"inbox 'cams': unknown redaction policy 'nope' \(known: "):
            check_config(cfg)

    def test_invalid_yaml_names_the_line(self, tmp_path, repo):
        cfg = write_config(tmp_path, repo, BASE + "workers: [1\n")
        with pytest.raises(ConfigError, match=r"redactd.yaml:\d+: not valid YAML"):
            load_config(cfg)

    def test_missing_file_is_a_config_error(self, tmp_path):
        with pytest.raises(ConfigError, match="file not found"):
            load_config(tmp_path / "absent.yaml")

    def test_cli_prints_the_error_without_traceback_and_exits_2(self, tmp_path, repo):
        cfg = write_config(tmp_path, repo, BASE + "workers: -3\n")
        proc = run_cli("config", "check", "--config", str(cfg))
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert "key 'workers': Input should be greater than or equal to 0 (got -3)" in proc.stderr

    def test_sizes_accept_units(self):
        assert parse_size("50 GiB") == 50 * 1024**3
        assert parse_size("500MB") == 500_000_000
        with pytest.raises(ValueError):
            parse_size("big")


class TestPolicies:
    def test_policy_with_bad_enum_value_names_allowed_values(self, tmp_path):
        p = tmp_path / "p.yaml"
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\nobscure:\n  method: smudge\n")
        with pytest.raises(ConfigError, match=r"line 6, key 'obscure.method': Input should be 'blur', "
                                              r"'pixelate' or 'fill' \(got 'smudge'\)"):
            load_policy(p)

    def test_policy_kind_must_be_known(self, tmp_path):
        p = tmp_path / "p.yaml"
        p.write_text("kind: shredding\nid: x\nversion: 1\n")
        with pytest.raises(ConfigError, match="key 'kind'"):
            load_policy(p)

    def test_duplicate_ids_in_a_directory_are_rejected(self, tmp_path):
        for name in ("a.yaml", "b.yaml"):
            (tmp_path / name).write_text("kind: redaction\nid: same\nversion: 1\nmode: metadata-only\n")
        with pytest.raises(ConfigError, match="already defined"):
            PolicySet.load_dir(tmp_path)

    def test_policy_hash_changes_with_content(self):
        pol = resolve_policy("visual-default", TEST_POLICIES)
        assert isinstance(pol, RedactionPolicy) and pol.mode is Mode.VISUAL
        changed = pol.model_copy(update={"version": pol.version + 1})
        assert policy_hash(pol) != policy_hash(changed)
        assert len(policy_hash(pol)) == 64

    def test_resolve_policy_accepts_a_file_path(self):
        pol = resolve_policy(str(TEST_POLICIES / "metadata-only.yaml"))
        assert pol.id == "metadata-only"

    def test_a_detection_cadence_longer_than_tracking_bridges_is_refused(self, tmp_path):
        p = tmp_path / "p.yaml"
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n    full_pass_every: 4\n"
                     "tracking:\n  extend_frames: 2\n")
        with pytest.raises(ConfigError, match=r"full_pass_every 4 .* leaves 3 frames between passes: raise "
                                              r"tracking.max_gap and tracking.extend_frames to at least 3"):
            load_policy(p)
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  text:\n    every_n_frames: 4\n"
                     "  every_k_frames: 2\n")
        with pytest.raises(ConfigError, match=r"text.every_n_frames 4 \(x every_k_frames 2\) leaves 7 frames"):
            load_policy(p)

    def test_whole_frame_passes_further_apart_are_accepted_when_every_frame_looks_at_what_changed(self, tmp_path):
        # between: changed gives every detected frame a pass, so no frame is left to tracking alone.
        p = tmp_path / "p.yaml"
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n    full_pass_every: 8\n"
                     "    between: changed\n  text:\n    every_n_frames: 8\n    between: changed\n")
        pol = load_policy(p)
        assert pol.detect.faces.full_pass_every == 8 and pol.detect.text.every_n_frames == 8
        # ...unless that pass itself skips frames: then tracking bridges those.
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  text:\n    every_n_frames: 8\n"
                     "    between: changed\n    changed_every: 3\n  every_k_frames: 3\n")
        with pytest.raises(ConfigError, match=r"text.changed_every 3 \(x every_k_frames 3\) leaves 8 frames"):
            load_policy(p)
        # With the whole pass on every frame there is nothing between to skip.
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  text:\n    every_n_frames: 1\n"
                     "    between: changed\n    changed_every: 2\ntracking:\n  max_gap: 0\n  extend_frames: 0\n")
        assert load_policy(p).detect.text.changed_every == 2
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n    full_pass_every: 8\n"
                     "    between: cheap\n")
        with pytest.raises(ConfigError, match=r"full_pass_every 8 .* leaves 7 frames between passes"):
            load_policy(p)
        # A moving camera's frames between may get the cheap pass instead: tracking bridges those.
        p.write_text("kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n    full_pass_every: 8\n"
                     "    between: changed\n    most_changed: cheap\n")
        with pytest.raises(ConfigError, match=r"full_pass_every 8 .* leaves 7 frames between passes"):
            load_policy(p)

    def test_rotated_face_passes_on_a_cadence_must_fit_tracking_too(self, tmp_path):
        p = tmp_path / "p.yaml"
        faces = "kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n"
        p.write_text(faces + "    tilt_angles: [60]\n    tilt_every: 4\n  every_k_frames: 2\n")
        with pytest.raises(ConfigError, match=r"faces.tilt_every 4 \(x every_k_frames 2\) leaves 7 frames"):
            load_policy(p)
        # Without angles there are no rotated passes, so their cadence constrains nothing.
        p.write_text(faces + "    tilt_every: 4\n  every_k_frames: 2\n")
        assert load_policy(p).detect.faces.tilt_angles == ()

    @pytest.mark.parametrize("angles", ["[0]", "[-30]", "[120]", "[30, 45, 60, 75]"])
    def test_tilt_angles_are_one_to_three_angles_up_to_90_degrees(self, tmp_path, angles):
        p = tmp_path / "p.yaml"
        p.write_text(f"kind: redaction\nid: x\nversion: 1\nmode: visual\ndetect:\n  faces:\n    tilt_angles: {angles}\n")
        with pytest.raises(ConfigError, match="tilt_angles"):
            load_policy(p)

    def test_every_bad_policy_file_is_reported_not_only_the_first(self, tmp_path):
        (tmp_path / "a.yaml").write_text("kind: redaction\nid: a\nversion: 1\nmode: visual\nobscure:\n  method: smudge\n")
        (tmp_path / "b.yaml").write_text("kind: shredding\nid: b\nversion: 1\n")
        (tmp_path / "c.yaml").write_text("kind: redaction\nid: c\nversion: 1\nmode: metadata-only\n")
        with pytest.raises(ConfigError) as caught:
            PolicySet.load_dir(tmp_path)
        text = str(caught.value)
        assert text.startswith("2 policy files have problems:")
        assert "a.yaml" in text and "obscure.method" in text and "b.yaml" in text and "key 'kind'" in text
        assert "c.yaml" not in text

    def test_the_test_policies_validate_with_the_shipped_ids(self, repo):
        tests_own = PolicySet.load_dir(TEST_POLICIES)
        assert sorted(tests_own.files) == sorted(PolicySet.load_dir(repo / "policies").files)


class TestSuiteIndependence:
    def test_only_the_example_checks_read_the_checkouts_live_policies_and_config(self, repo):
        # An operator edits etc/ and policies/ (make run uses them); behaviour tests use
        # tests/policies. Allowed readers: this file, the install tests (they install the examples)
        # and the hardened-Redis fixture (it runs the documented etc/redis-redactd.conf).
        pattern = re.compile(r"""(REPO|repo|parents\[2\])\s*/\s*["'](policies|etc)["']""")
        readers = sorted(str(p.relative_to(repo)) for p in (repo / "tests").rglob("*.py")
                         if pattern.search(p.read_text()))
        assert readers == ["tests/jobflow/conftest.py", "tests/systemd/test_install.py", "tests/systemd/test_unit.py",
                           "tests/test_config.py"]
