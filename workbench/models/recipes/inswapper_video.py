"""Swap a target face onto the main face of every frame of a video with InsightFace's inswapper.

Run by the `inswapper` recipe in the swapper's own environment (insightface, onnxruntime, OpenCV), from
the folder holding the swapper's .onnx file:

    python inswapper_video.py --source FACE.png --target VIDEO.mp4 --output OUT.mp4 [--model inswapper_128.onnx]

The largest face of each frame is replaced (frames without one are written unchanged); the output has no
soundtrack (the workbench muxes the source's back in).
"""
from __future__ import annotations

import argparse
import sys


def largest(faces: list) -> object | None:
    """The face with the biggest box, or None."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="the target face (persona) image")
    ap.add_argument("--target", required=True, help="the source video whose face is replaced")
    ap.add_argument("--output", required=True, help="the mp4 to write")
    ap.add_argument("--model", default="inswapper_128.onnx", help="the swapper .onnx file")
    ap.add_argument("--providers", default="CUDAExecutionProvider,CPUExecutionProvider")
    ap.add_argument("--det-size", type=int, default=640)
    args = ap.parse_args(argv)

    import cv2
    import insightface
    from insightface.app import FaceAnalysis

    providers = [p for p in args.providers.split(",") if p]
    app = FaceAnalysis(name="buffalo_l", providers=providers)
    app.prepare(ctx_id=0, det_size=(args.det_size, args.det_size))
    swapper = insightface.model_zoo.get_model(args.model, providers=providers)

    persona = cv2.imread(args.source)
    if persona is None:
        print(f"{args.source}: cannot read the target face image", file=sys.stderr)
        return 2
    face = largest(app.get(persona))
    if face is None:
        print(f"{args.source}: no face found in the target face image", file=sys.stderr)
        return 2

    video = cv2.VideoCapture(args.target)
    if not video.isOpened():
        print(f"{args.target}: cannot open the source video", file=sys.stderr)
        return 2
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    frames = missed = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        main_face = largest(app.get(frame))
        if main_face is None:
            missed += 1
        else:
            frame = swapper.get(frame, main_face, face, paste_back=True)
        writer.write(frame)
        frames += 1
    video.release()
    if writer is None:
        print(f"{args.target}: no frames decoded", file=sys.stderr)
        return 2
    writer.release()
    print(f"swapped {frames - missed} of {frames} frames ({missed} without a face)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
