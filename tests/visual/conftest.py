"""Fixtures for the visual redaction tests: the shipped policy, shared detectors, clip factories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redactd.policy import RedactionPolicy, resolve_policy
from redactd.visual.detect import CompositeDetector, build_detector
from tests.conftest import TEST_POLICIES

REPO = Path(__file__).resolve().parents[2]


def tweak(policy: RedactionPolicy, **changes: Any) -> RedactionPolicy:
    """A copy of ``policy`` with dotted-path fields changed: tweak(p, **{"detect.faces.tiles": 3})."""
    data = policy.model_dump(mode="python")
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return RedactionPolicy.model_validate(data)


@pytest.fixture(scope="session")
def policy() -> RedactionPolicy:
    return resolve_policy(str(TEST_POLICIES / "visual-default.yaml"))


@pytest.fixture(scope="session")
def detector(policy: RedactionPolicy) -> Iterator[CompositeDetector]:
    """The default policy's detectors, loaded once for the whole session."""
    det = build_detector(policy.detect)
    yield det
    det.close()
