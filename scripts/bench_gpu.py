"""GPU benchmark of the product's own pipeline code on the real architectures, random weights.

    python scripts/bench_gpu.py --out benchmarks/run.json [--cases diffusion-512,warp-1080p]

Builds Stable Diffusion 1.5 (UNet, VAE, CLIP text encoder) and Depth Anything V2 Small from
their published configs (written below, nothing downloaded) with random weights on the GPU:
speed does not depend on weight values. Reports per frame: time, frames per second, peak GPU
memory, UNet evaluations (images through the UNet, forward or backward), and achieved TFLOP/s
against a bf16 matrix-product ceiling measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from stereoconv.backends.diffusion import DiffusionBackend
from stereoconv.backends.warp import WarpBackend
from stereoconv.config import build_config
from stereoconv.diffusion.components import SDComponents
from stereoconv.diffusion.pipeline import StereoDiffusion
from stereoconv.layout import pack
from stereoconv.layouts import layout_of
from stereoconv.testing import IMAGENET_MEAN, IMAGENET_STD, SD1_SCHEDULER, make_tiny_tokenizer

# The benchmark settings of docs/benchmarks.md: the default preset as it was when its tables were
# measured (issues 7 and 15); issue 19 made the default 25 steps at most 768 px with a 16 px margin
# (its end-to-end numbers come from scripts/bench_video.py)
BENCHMARK_SETTINGS = dict(steps=50, max_side=1024, fill_margin=0)

# --- published configurations -----------------------------------------------------------------

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
CLIP_L14_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_attention_heads=12,
    num_hidden_layers=12,
    max_position_embeddings=77,
    projection_dim=768,
    hidden_act="quick_gelu",
)
DAV2_SMALL_BACKBONE = dict(
    hidden_size=384,
    num_hidden_layers=12,
    num_attention_heads=6,
    intermediate_size=1536,
    patch_size=14,
    image_size=518,
    out_indices=[3, 6, 9, 12],
    reshape_hidden_states=False,
)
DAV2_SMALL_HEAD = dict(
    reassemble_hidden_size=384,
    neck_hidden_sizes=[48, 96, 192, 384],
    fusion_hidden_size=64,
    head_hidden_size=32,
    reassemble_factors=[4, 2, 1, 0.5],
    patch_size=14,
    depth_estimation_type="relative",
)


def build_sd15(device: torch.device, dtype: torch.dtype) -> SDComponents:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(**CLIP_L14_TEXT))
    for m in (unet, vae, text):
        m.to(dtype).eval().requires_grad_(False)
    # the tokenizer's vocabulary does not change the cost: a generated one stands in
    return SDComponents(unet, vae, text, make_tiny_tokenizer(), DDIMScheduler(**SD1_SCHEDULER))


def build_depth(device: torch.device, dtype: torch.dtype):
    """Depth Anything V2 Small with random weights, wrapped in the product's DepthEstimator."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    from stereoconv.disparity.estimate import DepthEstimator

    folder = Path("/tmp/bench-dav2-small")
    if not (folder / "config.json").exists():
        backbone = Dinov2Config(**DAV2_SMALL_BACKBONE)
        config = DepthAnythingConfig(backbone_config=backbone, **DAV2_SMALL_HEAD)
        DepthAnythingForDepthEstimation(config).save_pretrained(folder)
        DPTImageProcessor(
            do_resize=True,
            size={"height": 518, "width": 518},
            keep_aspect_ratio=True,
            ensure_multiple_of=14,
            resample=3,
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        ).save_pretrained(folder)
    return DepthEstimator(str(folder), device=str(device), dtype=dtype)


# --- measurement helpers ----------------------------------------------------------------------


def matmul_ceiling(device: torch.device) -> float:
    """bf16 8192^3 matrix product, TFLOP/s (median of 20 after warm-up)."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * 8192**3 / sorted(times)[len(times) // 2] / 1e12


class UNetCounter:
    """Counts images through the UNet (forward passes x batch), filled by count_unet_images."""

    def __init__(self):
        self.images = 0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fn, frames: int, repeats: int, device: torch.device, counter=None, flops: bool = True
) -> dict:
    """Warm up once (timed apart: compiling happens there), then time `repeats` runs; count
    FLOPs on one more run."""
    from torch.utils.flop_counter import FlopCounterMode

    t0 = time.perf_counter()
    fn()
    sync(device)
    warmup = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    evals_before = counter.images if counter else 0
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    evals = (counter.images - evals_before) / repeats / frames if counter else 0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    total_flops = 0.0
    if flops:
        with FlopCounterMode(display=False) as counted:
            fn()
        total_flops = counted.get_total_flops()
    seconds = sorted(times)[len(times) // 2]
    return {
        "warmup_seconds": warmup,
        "seconds_per_frame": seconds / frames,
        "fps": frames / seconds,
        "peak_gib": peak,
        "unet_evals_per_frame": evals,
        "tflop_per_frame": total_flops / frames / 1e12,
        "tflops": total_flops / seconds / 1e12,
        "runs_seconds": times,
    }


def frames_and_disparity(n: int, height: int, width: int, divergence: float, device):
    g = torch.Generator(device=device).manual_seed(0)
    frames = torch.rand(n, 3, height, width, device=device, generator=g)
    ramp = torch.linspace(0, 1, width, device=device).expand(n, height, width)
    return frames, ramp * divergence / 100 * width  # a slanted scene, near on the right


# --- cases ------------------------------------------------------------------------------------


def diffusion_case(
    components, device, height, width, frames, repeats, flops=True, **settings
) -> dict:
    cfg = build_config(backend="diffusion", batch_size=frames, **{**BENCHMARK_SETTINGS, **settings})
    backend = DiffusionBackend.of(components, cfg)
    counter = count_unet_images(backend.pipeline)
    x, d = frames_and_disparity(frames, height, width, cfg.divergence, device)
    result = measure(lambda: backend(x, d), frames, repeats, device, counter, flops)
    result.update(size=f"{width}x{height}", frames_per_batch=frames)
    return result


def count_unet_images(pipe: StereoDiffusion) -> UNetCounter:
    """Count images through the UNet at the pipeline's model call (also when compiled)."""
    counter = UNetCounter()
    predict = pipe.predict

    def counted(x, t, views, cond, uncond, extra=None, step=None):
        counter.images += x.shape[0] * (2 if uncond is not None else 1)
        return predict(x, t, views, cond, uncond, extra, step=step)

    pipe.predict = counted
    return counter


def warp_video_case(depth, device, height, width, frames, preset) -> dict:
    """The whole `video` job with the warp backend: decode, depth, warp, SBS, libx264."""
    import tempfile

    import av
    import numpy as np

    from stereoconv.converter import StereoConverter
    from stereoconv.jobs.video.job import VideoOptions, open_workdir, prepare_job
    from stereoconv.runner.local import convert_video

    tmp = Path(tempfile.mkdtemp())
    src = tmp / "in.mp4"
    height, width = height - height % 2, width - width % 2
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        y, x = np.mgrid[0:height, 0:width]
        for i in range(frames):
            img = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, (x + y) % 256], -1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8))))
        out.mux(stream.encode())
    cfg = build_config(backend="warp", batch_size=8)
    converter = StereoConverter(cfg, device, depth_estimator=depth)
    results = {}
    for run in ("warmup", "timed"):
        options = VideoOptions(preset=preset, chunk_frames=frames)
        job = prepare_job(
            cfg, src, tmp / f"{run}.mp4", options, overwrite=True, notify=lambda text: None
        )
        open_workdir(job, True, lambda text: None)
        sync(device)
        t0 = time.perf_counter()
        convert_video(converter, job)
        sync(device)
        results[run] = time.perf_counter() - t0
    return {
        "seconds_per_frame": results["timed"] / frames,
        "fps": frames / results["timed"],
        "peak_gib": 0.0,
        "unet_evals_per_frame": 0,
        "tflop_per_frame": 0.0,
        "tflops": 0.0,
        "size": f"{width}x{height}",
        "encoder_preset": preset,
        "frames": frames,
    }


def warp_case(depth, device, height, width, frames, repeats) -> dict:
    cfg = build_config(backend="warp")
    backend = WarpBackend(fill_sigma=cfg.fill_sigma)
    from stereoconv.disparity.plan import relative_to_pixels

    x = torch.randint(0, 256, (frames, height, width, 3), device=device, dtype=torch.uint8)

    def run():
        rel = depth(x, batch_size=frames)
        d = relative_to_pixels(rel, width, cfg.divergence, cfg.convergence)
        left, right = backend(x.permute(0, 3, 1, 2).float() / 255, d)
        return pack(left, right, layout_of("sbs"))

    result = measure(run, frames, repeats, device)
    result.update(size=f"{width}x{height}", frames_per_batch=frames)
    return result


def smoke_patch() -> None:
    """Swap the real architectures for the tiny test models and the sizes for small ones."""
    import tempfile

    from stereoconv import testing as tiny_models
    from stereoconv.diffusion.components import load_components
    from stereoconv.disparity.estimate import DepthEstimator

    tmp = Path(tempfile.mkdtemp())
    sd = tiny_models.make_tiny_stable_diffusion(tmp / "sd")
    da = tiny_models.make_tiny_depth_anything(tmp / "da")
    globals()["build_sd15"] = lambda device, dtype: load_components(str(sd), device, dtype)
    globals()["build_depth"] = lambda device, dtype: DepthEstimator(str(da), str(device), dtype)
    globals()["SMOKE_SCALE"] = 8


SMOKE_SCALE = 1


def profile_case(components, device, height, width, frames) -> dict:
    """Where the time of one batch goes (eager, benchmark settings): the torch profiler's top
    operators by GPU time, and the share of the UNet's kinds of work."""
    from torch.profiler import ProfilerActivity, profile

    cfg = build_config(backend="diffusion", batch_size=frames, **BENCHMARK_SETTINGS)
    backend = DiffusionBackend.of(components, cfg)
    x, d = frames_and_disparity(frames, height, width, cfg.divergence, device)
    backend(x, d)  # warm-up
    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        backend(x, d)
        sync(device)
    events = prof.key_averages()
    total = sum(e.self_device_time_total for e in events) or 1
    top = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:20]
    rows = [
        {
            "op": e.key,
            "gpu_ms": e.self_device_time_total / 1e3 / frames,
            "share": e.self_device_time_total / total,
            "calls": e.count,
        }
        for e in top
    ]
    for r in rows:
        print(f"  {r['share']:6.1%} {r['gpu_ms']:8.2f} ms/frame {r['calls']:7d}  {r['op'][:70]}")
    return {
        "seconds_per_frame": total / 1e6 / frames,
        "fps": 0.0,
        "peak_gib": 0.0,
        "unet_evals_per_frame": 140,
        "tflop_per_frame": 0.0,
        "tflops": 0.0,
        "size": f"{width}x{height}",
        "frames_per_batch": frames,
        "top_ops": rows,
    }


def compiled_case(components, device, height, width, frames, repeats, **settings) -> dict:
    """The benchmark settings with the UNet compiled (--compile); after the eager cases, as it
    changes the components for good."""
    from stereoconv.backends.diffusion import compile_unet

    if not isinstance(components.unet, torch._dynamo.eval_frame.OptimizedModule):
        compile_unet(components)
    return diffusion_case(
        components, device, height, width, frames, repeats, flops=False, **settings
    )


CASES = (
    "diffusion-512",
    "diffusion-512-b16",
    "diffusion-1024x576",
    "paper-512",
    "warp-1080p",
    "warp-1080p-video",
    "diffusion-512-compiled",
    "diffusion-512-skip",
    "diffusion-1024x576-skip",
    "diffusion-512-compiled-skip",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--frames", type=int, default=8, help="frames per batch (diffusion)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny models and sizes on the CPU: checks the script"
    )
    args = parser.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    dtype = torch.float32 if args.smoke else torch.bfloat16
    cases = args.cases.split(",")
    if args.smoke:
        smoke_patch()
    report = {
        "date": datetime.date.today().isoformat(),
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "python scripts/bench_gpu.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "matmul_bf16_tflops": 1.0 if args.smoke else matmul_ceiling(device),
        "cases": {},
    }
    print(f"{report['card']}: bf16 matmul ceiling {report['matmul_bf16_tflops']:.0f} TFLOP/s")
    components = build_sd15(device, dtype) if any("512" in c or "576" in c for c in cases) else None
    k = SMOKE_SCALE
    bench = {
        "diffusion-512": lambda: diffusion_case(
            components, device, 512 // k, 512 // k, args.frames, args.repeats
        ),
        "diffusion-1024x576": lambda: diffusion_case(
            components, device, 576 // k, 1024 // k, args.frames, args.repeats
        ),
        "paper-512": lambda: diffusion_case(
            components,
            device,
            512 // k,
            512 // k,
            args.frames,
            1,
            flops=False,
            null_text=True,
            guidance=7.5,
        ),
        "profile-512-b16": lambda: profile_case(
            components, device, 512 // k, 512 // k, 2 * args.frames
        ),
        "paper-512-b16": lambda: diffusion_case(
            components,
            device,
            512 // k,
            512 // k,
            2 * args.frames,
            1,
            flops=False,
            null_text=True,
            guidance=7.5,
        ),
        "diffusion-512-b16": lambda: diffusion_case(
            components, device, 512 // k, 512 // k, 2 * args.frames, args.repeats
        ),
        "warp-1080p": lambda: warp_case(
            build_depth(device, dtype if k > 1 else torch.float16),
            device,
            1080 // k,
            1920 // k,
            8,
            args.repeats,
        ),
        "warp-1080p-video": lambda: warp_video_case(
            build_depth(device, dtype if k > 1 else torch.float16),
            device,
            1080 // k,
            1920 // k,
            64,
            "veryfast",
        ),
        "diffusion-512-compiled": lambda: compiled_case(
            components, device, 512 // k, 512 // k, 2 * args.frames, args.repeats
        ),
        # named options that change the output, measured apart from the benchmark settings
        "diffusion-512-skip": lambda: diffusion_case(
            components,
            device,
            512 // k,
            512 // k,
            2 * args.frames,
            args.repeats,
            skip_pre_shift=True,
        ),
        "diffusion-1024x576-skip": lambda: diffusion_case(
            components, device, 576 // k, 1024 // k, args.frames, args.repeats, skip_pre_shift=True
        ),
        "diffusion-512-compiled-skip": lambda: compiled_case(
            components,
            device,
            512 // k,
            512 // k,
            2 * args.frames,
            args.repeats,
            skip_pre_shift=True,
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for case in cases:
        result = bench[case]()
        report["cases"][case] = result
        args.out.write_text(json.dumps(report, indent=2))  # kept even if a later case fails
        share = result["tflops"] / report["matmul_bf16_tflops"]
        print(
            f"{case:20s} {result['seconds_per_frame']:8.3f} s/frame {result['fps']:7.2f} fps "
            f"{result['peak_gib']:6.1f} GiB  evals/frame {result['unet_evals_per_frame']:4.0f} "
            f"{result['tflops']:6.1f} TFLOP/s ({share:.0%})",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
