"""End-to-end `stereoconv video` timing on a GPU: a 1280x720 pan across the Middlebury Motorcycle
scene, converted by the real CLI (decode, depth, diffusion, encode, join) with Stable Diffusion
1.5 and Depth Anything V2 Small built from their published configs with random weights and
saved as folders (speed does not depend on weight values; quality is measured on the organism,
docs/evaluation.md).

Per frame: the marginal cost, (time of a long clip - time of a short one) / (frame difference),
so model loading and start-up, paid once per job, are left out (and reported apart). UNet images
and frames that reached diffusion are counted in-process, so a run whose depth left no hole worth
painting cannot pass for a fast one.

    python scripts/bench_video.py --image im0.png --out video.json --frames 12,72 \
        --case default= --case fast=--preset,fast
"""

from __future__ import annotations

import argparse
import datetime
import json
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_gpu import CLIP_L14_TEXT, SD15_UNET, SD15_VAE, build_depth  # noqa: E402


def save_sd15(folder: Path) -> Path:
    """Stable Diffusion 1.5's architecture, random weights, as a diffusers folder (fp16)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from stereoconv.testing import SD1_SCHEDULER, make_tiny_tokenizer

    if (folder / "unet" / "config.json").exists():
        return folder
    parts = {
        "unet": UNet2DConditionModel(**SD15_UNET),
        "vae": AutoencoderKL(**SD15_VAE),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT)),
    }
    for name, module in parts.items():
        module.to(torch.float16).save_pretrained(folder / name)
    make_tiny_tokenizer().save_pretrained(folder / "tokenizer")
    DDIMScheduler(**SD1_SCHEDULER).save_pretrained(folder / "scheduler")
    return folder


def make_clip(
    image: Path, out: Path, frames: int, width: int = 1280, height: int = 720, gray: bool = False
) -> Path:
    """A horizontal pan (2 px per frame, back and forth) across `image` scaled to 1.5x the
    clip's height; gray: `image` is a disparity map (PFM), written losslessly (FFV1) in pixels
    of the clip, rounded, 0 where unknown, for `--depth-kind disparity-px`."""
    import av

    if gray:
        from stereoconv.disparity.maps import read_pfm

        disparity = read_pfm(image)
        scale = 1.5 * height / disparity.shape[0]
        coded = np.where(np.isfinite(disparity), np.round(disparity * scale), 0).clip(0, 255)
        im = Image.fromarray(coded.astype(np.uint8))
        resample = Image.NEAREST
    else:
        im, scale, resample = (
            Image.open(image).convert("RGB"),
            1.5 * height / Image.open(image).height,
            Image.BICUBIC,
        )
    big = np.asarray(im.resize((round(im.width * scale), round(im.height * scale)), resample))
    with av.open(str(out), "w") as container:
        if gray:
            stream = container.add_stream("ffv1", rate=24)
            stream.pix_fmt = "gray"
        else:
            stream = container.add_stream("libx264", rate=24, options={"crf": "18"})
            stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width, height
        room = big.shape[1] - width
        if room <= 0:
            raise ValueError(f"{image} at 1.5x the clip's height is too narrow to pan across")
        for i in range(frames):
            x = (2 * i) % (2 * room)  # back and forth: every frame moves, as in real footage
            x = x if x <= room else 2 * room - x
            crop = np.ascontiguousarray(big[:height, x : x + width])
            frame = av.VideoFrame.from_ndarray(crop, format="gray" if gray else "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out


def footage_clip(source: Path, out: Path, frames: int, width: int, height: int) -> Path:
    """Real footage at WIDTHxHEIGHT: `source` (e.g. bikes.mp4, 640x272) scaled (bicubic, on the
    GPU where there is one) to cover the frame and cropped to its centre, played forward and
    backward until `frames` (no cut at the turns), x264 CRF 18 (veryfast), at the source's rate.
    Made once: an existing file is reused."""
    import av
    import torch.nn.functional as F

    if out.exists():
        return out
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with av.open(str(source)) as container:
        rate = container.streams.video[0].average_rate
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    h, w = decoded[0].shape[:2]
    scale = max(width / w, height / h)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    scaled = {}
    with av.open(str(out), "w") as container:
        options = {"crf": "18", "preset": "veryfast"}
        stream = container.add_stream("libx264", rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            k = i % (2 * len(decoded) - 2)
            k = k if k < len(decoded) else 2 * len(decoded) - 2 - k  # back and forth
            if k not in scaled:
                x = torch.from_numpy(decoded[k]).to(device).permute(2, 0, 1)[None].float()
                x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
                x = x[0, :, top : top + height, left : left + width].clamp(0, 255).round()
                scaled[k] = np.ascontiguousarray(x.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
            frame = av.VideoFrame.from_ndarray(scaled[k], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out


def smooth_depth(clip: Path, out: Path, width: int = 480) -> Path:
    """A smooth depth video for `clip`: each frame's luminance, at `width` px wide, blurred
    (Gaussian, 1/80 of the width), near = bright, written losslessly (FFV1, gray) for
    `--depth-kind relative-disparity`: a depth that gives the right view the smoothness of a
    good depth model's, where a random-weight model gives noise. Made once."""
    import av
    from PIL import ImageFilter

    if out.exists():
        return out
    with av.open(str(clip)) as source, av.open(str(out), "w") as container:
        video = source.streams.video[0]
        height = round(video.height * width / video.width / 2) * 2
        stream = container.add_stream("ffv1", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        for frame in source.decode(video):
            luma = frame.reformat(width=width, height=height, format="gray")  # swscale: fast
            gray = luma.to_image().filter(ImageFilter.GaussianBlur(width / 80))
            container.mux(stream.encode(av.VideoFrame.from_image(gray).reformat(format="gray")))
        container.mux(stream.encode())
    return out


class StackSampler:
    """Where each thread spends its time (a tiny sampling profiler, threads included, which
    cProfile misses): every `interval` s, the innermost frame of every thread, and the
    innermost frame in stereoconv's own code."""

    def __init__(self, interval: float = 0.002):
        import collections
        import threading

        self.interval, self.counts = interval, collections.Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import threading

        me = threading.get_ident()
        while not self.stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                inner, own = frame, None
                while frame is not None:
                    if own is None and "stereoconv" in frame.f_code.co_filename:
                        own = frame
                    frame = frame.f_back
                name = names.get(ident, "?")
                if not name.startswith("tqdm"):
                    self.counts[(name[:20], self.where(inner), self.where(own))] += 1

    @staticmethod
    def where(frame) -> str | None:
        if frame is None:
            return None
        return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def report(self, top: int = 60) -> list[str]:
        total = sum(self.counts.values()) or 1
        return [
            f"{n / total:6.1%}  {thread:20s} {inner}  <- {own}"
            for (thread, inner, own), n in self.counts.most_common(top)
        ]


class Timeline:
    """When the job's phases begin and end, seconds from the CLI's start: preparing the job
    (probe, timestamps), the model loads, each chunk (with its thread), the join."""

    def __init__(self) -> None:
        self.origin, self.events, self.originals = time.perf_counter(), [], []

    def wrap(self, module, name: str, label) -> None:
        inner = getattr(module, name)
        self.originals.append((module, name, inner))

        def timed(*args, **kwargs):
            import threading

            start = time.perf_counter() - self.origin
            try:
                return inner(*args, **kwargs)
            finally:
                end = time.perf_counter() - self.origin
                what = label(*args, **kwargs)
                self.events.append((what, threading.current_thread().name, start, end))

        setattr(module, name, timed)

    def install(self) -> None:
        import stereoconv.converter as converter
        import stereoconv.jobs.video.job as job
        import stereoconv.runner.local as local

        self.wrap(job, "prepare_job", lambda *a, **k: "prepare_job")
        self.wrap(local, "convert_chunk", lambda job, conv, chunk, *a: f"chunk {chunk.first}")
        self.wrap(local, "finish_job", lambda *a, **k: "finish_job")
        self.wrap(converter, "DepthEstimator", lambda *a, **k: "load the depth model")

    def uninstall(self) -> None:
        for module, name, inner in self.originals:
            setattr(module, name, inner)

    def rows(self) -> list[str]:
        return [
            f"{s:7.2f} {e:7.2f}  {w:20s} {t}"
            for w, t, s, e in sorted(self.events, key=lambda e: e[2])
        ]


class Counts:
    unet_images = 0  # latents through the UNet, of any size (a crop counts 1)
    latent_pixels = 0  # their latent pixels: / the working latent = image-evaluations
    diffusion_frames = 0  # frames the diffusion fill painted (a crop counts the frame once)


def count_work() -> Counts:
    """Count images and latent pixels through the UNet and frames given to the diffusion fill,
    in this process."""
    from stereoconv.backends.diffusion import DiffusionBackend
    from stereoconv.diffusion.pipeline import StereoDiffusion

    counts = Counts()
    predict, fill = StereoDiffusion.predict, DiffusionBackend.fill

    def counted_predict(self, x, t, views, cond, uncond, extra=None, step=None):
        branches = 2 if uncond is not None else 1
        counts.unet_images += x.shape[0] * branches
        counts.latent_pixels += x.shape[0] * branches * x.shape[-2] * x.shape[-1]
        return predict(self, x, t, views, cond, uncond, extra, step=step)

    def counted_fill(self, frames, warped, holes, sparse=False):
        counts.diffusion_frames += frames.shape[0]
        return fill(self, frames, warped, holes, sparse)

    StereoDiffusion.predict, DiffusionBackend.fill = counted_predict, counted_fill
    return counts


def working_latent(width: int, height: int) -> int:
    """Latent pixels of one frame's working image at the default settings (at most 768 px,
    16 px margins, 8 px latent): the unit of one UNet image-evaluation."""
    scale = min(1.0, 768 / max(width, height))
    wh, ww = round(height * scale), round(width * scale)
    return -(-wh // 8) * -(-(ww + 32) // 8)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_cli(args: list[str]) -> float:
    """`stereoconv ARGS` in this process (so the counters see it); wall seconds."""
    sys.argv = ["stereoconv", *args]
    sync()
    start = time.perf_counter()
    try:
        runpy.run_module("stereoconv", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        if exit.code not in (0, None):
            raise RuntimeError(f"stereoconv {' '.join(args)} exited with {exit.code}") from None
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="the scene the clip pans over")
    parser.add_argument(
        "--footage",
        type=Path,
        help="real footage instead of the pan (e.g. bikes.mp4), scaled to --size; GIVEN is then"
        " its smooth depth (smooth_depth)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-video"))
    parser.add_argument("--frames", default="12,72", help="short,long clip lengths")
    parser.add_argument("--size", default="1280x720", help="the clip's WIDTHxHEIGHT")
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="NAME=ARG,ARG,...: extra CLI arguments of one case (e.g. fast=--preset,fast); GIVEN"
        " stands for the scene's own disparity (disp0.pfm beside --image) as the depth",
    )
    parser.add_argument(
        "--sample", action="store_true", help="sample the threads' stacks in the long runs"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="print when each phase ran, in the long runs"
    )
    parser.add_argument(
        "--chunks-at-once",
        type=int,
        help="chunks converted at once (default: the product's choice, runner.local)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models, a small clip, the CPU: checks the script"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each clip length, the fastest kept (the marginal cost rests on two runs,"
        " and start-up varies by seconds between runs)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    size = tuple(int(n) for n in args.size.split("x"))
    if args.smoke:
        from stereoconv import testing

        sd = testing.make_tiny_stable_diffusion(args.work / "sd-tiny")
        depth = str(testing.make_tiny_depth_anything(args.work / "da-tiny"))
        size = (128, 72)
    else:
        sd = save_sd15(args.work / "sd15-random")
        build_depth(torch.device("cuda"), torch.float16)  # saves its folder
        depth = "/tmp/bench-dav2-small"
    short, long = (int(n) for n in args.frames.split(","))
    if args.footage:
        clips = {
            n: footage_clip(args.footage, args.work / f"footage{size[1]}p{n}.mp4", n, *size)
            for n in (short, long)
        }
        # GIVEN: the footage's blurred luminance as its relative disparity
        given = {n: smooth_depth(c, c.with_name(c.stem + "-depth.mkv")) for n, c in clips.items()}
        given_kind = ["--depth-kind", "relative-disparity"]
    else:
        clips = {
            n: make_clip(args.image, args.work / f"pan{size[1]}p{n}.mp4", n, *size)
            for n in (short, long)
        }
        # GIVEN: the scene's own disparity (holes where the scene has them)
        pfm = args.image.with_name("disp0.pfm")
        given = {
            n: make_clip(pfm, args.work / f"pan{size[1]}p{n}-disparity.mkv", n, *size, gray=True)
            for n in (short, long)
            if pfm.exists()
        }
        # the coded disparity grows with the size: about 3 % of the width
        given_kind = ["--depth-kind", "disparity-px", "--depth-scale", "0.25"]
    counts = count_work()
    if args.chunks_at_once:
        import stereoconv.runner.local as local

        local.chunks_at_once = lambda converter, photos=False, chunks=None: args.chunks_at_once
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke)",
        "torch": torch.__version__,
        "command": "python scripts/bench_video.py " + " ".join(sys.argv[1:]),
        "clip": f"{size[0]}x{size[1]}, "
        + (
            f"{args.footage.name} scaled and cropped"
            if args.footage
            else "24 fps, a pan across Middlebury Motorcycle"
        ),
        "cases": {},
    }
    for spec in args.case or ["default="]:
        name, _, extra = spec.partition("=")
        extra_args = [a for a in extra.split(",") if a]
        seconds = {}
        for n, clip in clips.items():
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            before = (counts.unet_images, counts.diffusion_frames, counts.latent_pixels)
            out = args.work / f"{name}-{size[1]}p-{n}.mp4"
            base = ["video", str(clip), str(out), "--model", str(sd), "--depth-model", depth]
            depth_args = ["--depth", str(given.get(n)), *given_kind]
            expanded = [a for e in extra_args for a in (depth_args if e == "GIVEN" else [e])]
            timeline = Timeline()
            if args.timeline and n == long:
                timeline.install()
            if args.sample and n == long:
                with StackSampler() as sampler:
                    seconds[n] = run_cli([*base, *expanded, "--overwrite", "--quiet"])
                print("\n".join(sampler.report()))
            else:
                seconds[n] = run_cli([*base, *expanded, "--overwrite", "--quiet"])
            for _ in range(args.repeats - 1):  # the fastest run of each length: start-up varies
                seconds[n] = min(seconds[n], run_cli([*base, *expanded, "--overwrite", "--quiet"]))
            if args.timeline and n == long:
                print(f"{name}, {n} frames, {seconds[n]:.2f} s:", *timeline.rows(), sep="\n")
                report.setdefault("timelines", {})[name] = timeline.events
                timeline.uninstall()
            runs = args.repeats  # the counters add up every run of this length
            images = (counts.unet_images - before[0]) / runs
            filled = (counts.diffusion_frames - before[1]) // runs
            pixels = (counts.latent_pixels - before[2]) / runs
        result = {
            "args": extra_args,
            "seconds": seconds,
            "seconds_per_frame": (seconds[long] - seconds[short]) / (long - short),
            "long_clip_fps_whole_run": long / seconds[long],
            "startup_seconds_estimate": seconds[short]
            - short * (seconds[long] - seconds[short]) / (long - short),
            "unet_images_per_frame": images / long,
            "unet_image_evaluations_per_frame": pixels / working_latent(*size) / long,
            "frames_through_diffusion": f"{filled}/{long}",
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30
            if torch.cuda.is_available()
            else 0,
        }
        report["cases"][f"{name}-{size[1]}p"] = result
        args.out.write_text(json.dumps(report, indent=2))
        print(
            f"{name:24s} {result['seconds_per_frame']:.3f} s/frame  "
            f"{result['long_clip_fps_whole_run']:.1f} fps whole run  "
            f"start-up {result['startup_seconds_estimate']:.1f} s  "
            f"UNet images/frame {result['unet_images_per_frame']:.0f} "
            f"(image-evaluations {result['unet_image_evaluations_per_frame']:.1f})  "
            f"diffused {result['frames_through_diffusion']}  {result['peak_gib']:.1f} GiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
