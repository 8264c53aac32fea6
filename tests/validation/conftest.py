"""Fixtures for the validation tests: one scene, rendered right and with one face left unobscured."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from redactd.policy import RedactionPolicy
from redactd.validation import Validator
from tests.validation import scenes


@dataclass(frozen=True)
class Rendered:
    clip: scenes.synth.Clip
    output: Path
    detections: dict[str, Any]
    hidden: int | None


@pytest.fixture(scope="session")
def faces_policy() -> RedactionPolicy:
    """Shipped settings, but every 5th frame checked: the test clips last under a second."""
    return scenes.faces_policy(sample_every_n_frames=5)


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> scenes.synth.Clip:
    return scenes.make_scene(tmp_path_factory.mktemp("scene") / "coffee.mp4", "coffee", frames=20)


@pytest.fixture(scope="session")
def correct(scene: scenes.synth.Clip, faces_policy: RedactionPolicy,
            tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    out = tmp_path_factory.mktemp("correct") / "out.mp4"
    return Rendered(scene, out, scenes.render(scene, out, faces_policy), None)


@pytest.fixture(scope="session")
def under(scene: scenes.synth.Clip, faces_policy: RedactionPolicy,
          tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The astronaut (face 0) is never obscured: one track missing from the render."""
    out = tmp_path_factory.mktemp("under") / "out.mp4"
    return Rendered(scene, out, scenes.render(scene, out, faces_policy, hide_face=0), 0)


@pytest.fixture(scope="session")
def validator(faces_policy: RedactionPolicy) -> Iterator[Validator]:
    """The shipped policy's second opinion, loaded once (loading the models costs about a second)."""
    with Validator(faces_policy.validation) as v:
        yield v
