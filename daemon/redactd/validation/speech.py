"""Red-team one output's audio: Silero VAD listens to what mute_speech left, speech found sends it to review.

The same detector that found the speech listens again, this time to the encoded output, as
anyone downloading the dataset would hear it: a segment the first pass missed (speech under
loud noise, a VAD miss), or padding too short for a soft start, shows up here. More than
``validation.audio.max_speech_s`` seconds of speech sends the job to review.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redactd import log
from redactd.policy import AudioValidation, Speech
from redactd.visual.speech import speech_in_file
from redactd.visual.vad import SegmentRule, vad_info

#: Most segments listed in the report: enough to find them, small to store.
MAX_LISTED = 20


@dataclass(frozen=True)
class SpeechReport:
    """What the VAD heard in the output. Times only: no audio, no words."""

    verdict: Literal["publish", "review"]
    reason: str | None
    speech_s: float
    audio_s: float
    segments: tuple[tuple[float, float], ...]
    threshold: float
    max_speech_s: float
    seconds: float

    def figures(self) -> dict[str, Any]:
        """The sidecar's ``validation.audio`` section."""
        info = vad_info()
        return {
            "verdict": self.verdict,
            "speech_s": round(self.speech_s, 3),
            "audio_s": round(self.audio_s, 3),
            "threshold": self.threshold,
            "max_speech_s": self.max_speech_s,
            "segments": [[round(a, 3), round(b, 3)] for a, b in self.segments[:MAX_LISTED]],
            "model": {"name": info.name, "sha256": info.sha256},
            "seconds": round(self.seconds, 3),
        }


def check_speech(output: Path, cfg: AudioValidation, speech: Speech) -> SpeechReport:
    """Listen to ``output``'s audio for speech the render left; review when there is more than the policy allows."""
    started = time.perf_counter()
    rule = SegmentRule(cfg.speech_threshold, speech.min_speech_ms / 1000, speech.min_silence_ms / 1000)
    found = speech_in_file(output, rule)
    segments, audio_s = found if found is not None else ([], 0.0)
    total = sum(b - a for a, b in segments)
    review = total > cfg.max_speech_s
    reason = None
    if review:
        reason = (f"validation: the VAD still hears {total:.2f} s of speech in the output's audio "
                  f"({len(segments)} segment(s), first at {segments[0][0]:.2f} s; the policy allows "
                  f"{cfg.max_speech_s:.2f} s at probability {cfg.speech_threshold})")
    report = SpeechReport("review" if review else "publish", reason, total, audio_s, tuple(segments),
                          cfg.speech_threshold, cfg.max_speech_s, time.perf_counter() - started)
    log.get_logger().info("output_audio_validated", verdict=report.verdict, speech_s=round(total, 3),
                          segments=len(segments), seconds=round(report.seconds, 3))
    return report
