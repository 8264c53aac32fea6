"""Review end to end in the real daemon (`python -m redactd run` as a subprocess) and the review CLI.

Two inboxes: "faces" redacts faces (its outputs publish); "careless" only looks for text, so every
face stays visible and validation must hold its outputs back. Reviewers then approve, reject, and
reject-and-requeue with the faces policy, through `redactd review`.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import yaml

from redactd.fsutil import sha256_file
from redactd.jobflow.jobstore import Job, JobState
from tests.daemon.conftest import DaemonRun, drop
from tests.validation import scenes

pytestmark = pytest.mark.slow

SCENES = {"good.mp4": ("faces", "coffee", 0), "approve.mp4": ("careless", "rocket", 0),
          "reject.mp4": ("careless", "brick", 1), "requeue.mp4": ("careless", "chelsea", 1),
          # Not the astronaut on gravel: there the second opinion's CenterFace took the suit's
          # shoulder beside the blurred face for a face (0.10-0.17) on all three sampled frames,
          # whichever way the boxes were made, and sent even a correct render to review.
          "blur-later.mp4": ("careful", "grass", 1)}


def policy_files(directory: Path) -> None:
    faces = scenes.faces_policy(sample_every_n_frames=5).model_dump(mode="json", exclude_none=True)
    faces["id"] = "faces"
    careless = json.loads(json.dumps(faces))
    careless["id"] = "careless"
    careless["detect"]["faces"]["enabled"] = False
    careless["detect"]["text"]["enabled"] = True
    careful = json.loads(json.dumps(faces))
    careful["id"] = "careful"
    careful["validation"]["review_before_blur"] = True
    for pol in (faces, careless, careful):
        (directory / f"{pol['id']}.yaml").write_text(yaml.safe_dump(pol))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, scenes.synth.Clip]:
    root = tmp_path_factory.mktemp("clips")
    return {name: scenes.make_scene(root / f"src-{name}", bg, frames=15, layout=layout)
            for name, (_, bg, layout) in SCENES.items()}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, scenes.synth.Clip]) -> Iterator[DaemonRun]:
    root = tmp_path_factory.mktemp("review")
    run = DaemonRun(root, settle=0.5, workers=2)
    policy_files(run.policies)
    inboxes = []
    for name in ("faces", "careless", "careful"):
        (root / f"in-{name}").mkdir()
        inboxes.append({"name": name, "path": str(root / f"in-{name}"), "policy": name})
    run.settings["inboxes"] = inboxes
    # The daemon holds the custody log; reviewers' entries wait in the outbox for its checkpoint.
    run.settings["custody"]["checkpoint_minutes"] = 0.02
    run.write_config()
    run.start()
    try:
        for name, (inbox, _, _) in SCENES.items():
            drop(root / f"in-{inbox}", name, clips[name].path.read_bytes())
        run.wait_finished(len(SCENES), timeout=240)
        yield run
    finally:
        if run.alive():
            run.stop()


def job(run: DaemonRun, name: str) -> Job:
    (found,) = [j for j in run.jobs() if j.name == name]
    return found


def review(run: DaemonRun, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redactd", "--config", str(run.config), "review", *args],
                          env=run.env, capture_output=True, text=True, timeout=120, check=False)


def custody_entries(run: DaemonRun, job_id: str, count: int) -> list[dict]:
    """The job's review and publish entries, once the daemon has appended ``count`` of them."""
    def entries() -> list[dict]:
        lines = [json.loads(line) for seg in sorted((run.state / "custody").glob("custody-*.jsonl"))
                 for line in seg.read_text().splitlines()]
        return [e for e in lines if e["job_id"] == job_id and e["event"].startswith(("review_", "published"))]

    return run.wait_for(lambda: len(found := entries()) >= count and found, timeout=30,
                        what=f"{count} custody entries for job {job_id}")


class TestReviewQueue:
    def test_under_redacted_outputs_wait_in_review_and_never_reach_clean_storage(self, daemon: DaemonRun) -> None:
        careless = [n for n, (inbox, _, _) in SCENES.items() if inbox == "careless"]
        good = job(daemon, "good.mp4")
        assert {job(daemon, n).state for n in careless} == {JobState.REVIEW}
        assert good.state is JobState.PUBLISHED
        published = {p.name for p in daemon.clean.iterdir()}
        assert published == {good.output_name, f"{good.output_name}.json"}
        for name in careless:
            j = job(daemon, name)
            assert j.output_path is not None and j.output_path.parent == daemon.review / j.id
            assert sha256_file(j.output_path) == j.output_sha256
            assert "validation:" in (daemon.review / j.id / "REASON.txt").read_text()

    def test_a_correct_redaction_is_published_with_its_validation_figures(
        self, daemon: DaemonRun, clips: dict[str, scenes.synth.Clip]
    ) -> None:
        good = job(daemon, "good.mp4")
        side = json.loads((daemon.clean / f"{good.output_name}.json").read_text())
        assert side["validation"]["verdict"] == "publish" and side["validation"]["leak_frames"] == 0
        walker, still = scenes.face_tracks(side["detections"], clips["good.mp4"])  # each face one track, all along
        assert len(walker) == len(still) == 1 and walker != still

    def test_list_shows_each_job_in_review_with_its_leak_score(self, daemon: DaemonRun) -> None:
        out = review(daemon, "list", "--json")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        waiting = {job(daemon, n).id for n in ("approve.mp4", "reject.mp4", "requeue.mp4")}
        assert waiting <= {r["id"] for r in rows}
        assert all(r["leak_score"] == 1.0 for r in rows if r["id"] in waiting)

    def test_show_writes_a_private_contact_sheet(self, daemon: DaemonRun) -> None:
        j = job(daemon, "approve.mp4")
        out = review(daemon, "show", j.id)
        assert out.returncode == 0, out.stderr
        path = Path(out.stdout.strip().splitlines()[-1].rsplit(": ", 1)[1])
        assert path.parent == daemon.state / "review-sheets"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        sheet = cv2.imread(str(path))
        # Three flagged frames (0, 5, 10), each an original-beside-redacted pair of 400 px panels.
        assert sheet.shape[1] == 800 and sheet.shape[0] == 3 * (22 + 300)

    def test_approve_publishes_the_reviewed_output_and_records_who_approved(self, daemon: DaemonRun) -> None:
        j = job(daemon, "approve.mp4")
        out = review(daemon, "approve", j.id, "--by", "alice")
        assert out.returncode == 0, out.stderr
        done = job(daemon, "approve.mp4")
        assert done.state is JobState.PUBLISHED and done.output_path == daemon.clean / f"{j.output_sha256}.mp4"
        assert sha256_file(done.output_path) == j.output_sha256
        side = json.loads((daemon.clean / f"{j.output_sha256}.mp4.json").read_text())
        assert side["review"]["approved_by"] == "alice"
        assert daemon.history(j.id)[-1].detail == "approved by alice"
        assert not (daemon.review / j.id).exists()
        assert "custody: queued for the running daemon" in out.stdout
        entries = custody_entries(daemon, j.id, 2)
        assert [(e["event"], e["actor"]) for e in entries] == [("review_approved", "alice"), ("published", "alice")]

    def test_reject_sends_the_job_to_failed_with_its_raw_file_kept(self, daemon: DaemonRun) -> None:
        j = job(daemon, "reject.mp4")
        before = set(daemon.clean.iterdir())
        out = review(daemon, "reject", j.id, "--by", "bob", "--reason", "face visible at 0s")
        assert out.returncode == 0, out.stderr
        done = job(daemon, "reject.mp4")
        assert done.state is JobState.FAILED
        assert done.raw_path == daemon.failed / j.id / "raw.mp4" and sha256_file(done.raw_path) == j.raw_sha256
        assert "rejected by bob: face visible at 0s" in (daemon.failed / j.id / "REASON.txt").read_text()
        assert not (daemon.review / j.id).exists() and set(daemon.clean.iterdir()) == before
        (entry,) = custody_entries(daemon, j.id, 1)
        assert (entry["event"], entry["actor"], entry["details"]["reason"]) == \
            ("review_rejected", "bob", "face visible at 0s")

    def test_reject_with_requeue_runs_the_job_again_under_another_policy(self, daemon: DaemonRun) -> None:
        j = job(daemon, "requeue.mp4")
        out = review(daemon, "reject", j.id, "--by", "carol", "--requeue-with", "faces")
        assert out.returncode == 0, out.stderr
        done = daemon.wait_for(lambda: (x := job(daemon, "requeue.mp4")).state is JobState.PUBLISHED and x,
                               timeout=120, what="the re-queued job to publish")
        assert done.policy_id == "faces"
        assert "rejected by carol: rejected in review; re-queued with policy faces" in \
            [t.detail for t in daemon.history(j.id)]
        side = json.loads((daemon.clean / f"{done.output_name}.json").read_text())
        assert side["validation"]["verdict"] == "publish"

    def test_a_decision_on_a_job_not_in_review_is_refused(self, daemon: DaemonRun) -> None:
        out = review(daemon, "approve", job(daemon, "good.mp4").id)
        assert out.returncode == 1 and "not in review" in out.stderr


class TestReviewBeforeBlurring:
    def test_the_job_waits_with_its_boxes_and_a_contact_sheet_before_anything_is_rendered(
            self, daemon: DaemonRun) -> None:
        j = job(daemon, "blur-later.mp4")  # pytest runs tests in file order: the approval comes next
        assert j.state is JobState.REVIEW
        folder = daemon.review / j.id
        assert j.output_path == folder / "output.png" and cv2.imread(str(j.output_path)) is not None
        side = json.loads((folder / "output.json").read_text())
        assert side["stage"] == "review-before-blur" and side["detections"]["counts"]["tracks"] == {"face": 2}
        assert "review before blurring" in (j.last_error or "")
        out = review(daemon, "show", j.id)
        assert out.returncode == 0, out.stderr
        sheet = cv2.imread(out.stdout.strip().splitlines()[-1].rsplit(": ", 1)[1])
        assert sheet.shape[1] == 400  # the originals alone, with the boxes to be obscured: nothing rendered

    def test_approving_the_boxes_renders_exactly_them_then_validates_and_publishes(self, daemon: DaemonRun) -> None:
        j = job(daemon, "blur-later.mp4")
        boxes = json.loads((daemon.review / j.id / "output.json").read_text())["detections"]["frames"]
        out = review(daemon, "approve", j.id, "--by", "dana")
        assert out.returncode == 0, out.stderr
        assert "boxes approved by dana" in out.stdout
        # Published, and then the review folder with the approved boxes is cleared away.
        done = daemon.wait_for(lambda: (x := job(daemon, "blur-later.mp4")).state is JobState.PUBLISHED
                               and not (daemon.review / j.id).exists() and x,
                               timeout=120, what="the approved job to render and publish")
        side = json.loads((daemon.clean / f"{done.output_name}.json").read_text())
        assert side["review"]["boxes_approved_by"] == "dana"
        assert side["detections"]["frames"] == boxes
        assert side["validation"]["verdict"] == "publish"
        history = [t.detail for t in daemon.history(j.id)]
        assert "boxes approved by dana; rendering" in history
