"""Make the demo clip in samples/ from the Middlebury 2014 "Motorcycle" pair (bundled with
scikit-image): a slow pan of a crop window across the left view, H.264 with a quiet tone as its
audio track, and the same pan over the ground-truth disparity as a lossless 8-bit video
(FFV1, disparity x 4, so quarter-pixel steps; 0 = unknown), for `--depth ...
--depth-kind disparity-px --depth-scale 0.25`.

    python scripts/make_sample.py samples/
"""

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from skimage import data

FPS, FRAMES, WIDTH, HEIGHT = 24, 48, 480, 320


def pan_windows(full_width: int, full_height: int):
    top = (full_height - HEIGHT) // 2
    for i in range(FRAMES):
        left = round(i * (full_width - WIDTH) / (FRAMES - 1))
        yield slice(top, top + HEIGHT), slice(left, left + WIDTH)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    image, _, disparity = data.stereo_motorcycle()
    coded = np.where(np.isfinite(disparity), np.round(disparity * 4), 0).astype(np.uint8)
    windows = list(pan_windows(image.shape[1], image.shape[0]))

    with av.open(str(out / "motorcycle_pan.mp4"), "w") as clip:
        video = clip.add_stream("libx264", rate=FPS, options={"crf": "16"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = clip.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for rows, cols in windows:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[rows, cols]))
            clip.mux(video.encode(frame))
        clip.mux(video.encode())
        seconds = FRAMES / FPS
        t = np.arange(int(48000 * seconds)) / 48000
        tone = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[None, start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            clip.mux(audio.encode(frame))
        clip.mux(audio.encode())

    with av.open(str(out / "motorcycle_pan_disparity.mkv"), "w") as depth:
        stream = depth.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "gray"
        for rows, cols in windows:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(coded[rows, cols]), format="gray"
            )
            depth.mux(stream.encode(frame))
        depth.mux(stream.encode())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
