"""StereoDiffusion on tiny random-weight models: equivalence with diffusers, inversion,
attention, shift and SPSMD, batching. Random weights prove the mechanics, never quality."""

import pytest
import torch
from diffusers import (
    DDIMInverseScheduler,
    StableDiffusionDepth2ImgPipeline,
    StableDiffusionPipeline,
)

from stereoconv.config import build_config
from stereoconv.diffusion.attention import StereoAttnProcessor, StereoStep, stereo_attention
from stereoconv.diffusion.components import load_components
from stereoconv.diffusion.inversion import ddim_inversion_step, ddim_invert, null_text_inversion
from stereoconv.diffusion.pipeline import StereoDiffusion, depth_condition
from stereoconv.diffusion.sampler import StereoSchedule, sample_stereo
from stereoconv.diffusion.settings import DiffusionSettings
from stereoconv.geometry import shift_latent

CPU = torch.device("cpu")


def settings(**kw):
    """StereoDiffusion's own settings, from a config as the product builds them."""
    base = dict(backend="diffusion", steps=10, shift_fraction=0.2, spsmd_every=2, attention="uni")
    base.update(kw)
    return DiffusionSettings.of(build_config(**base))


@pytest.fixture
def sd(tiny_sd):
    return load_components(str(tiny_sd), CPU)


def images(n=2, h=48, w=64, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def uniform_disparity(n, h, w, latent_px):
    return torch.full((n, h, w), 8.0 * latent_px)


# --- equivalence with diffusers --------------------------------------------------------------


@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_text_left_view_equals_stable_diffusion_pipeline(tiny_sd, sd, guidance):
    cfg = settings(guidance=guidance, attention="off", spsmd_every=0, seed=3)
    zero = lambda img: torch.zeros(img.shape[0], *img.shape[-2:])  # noqa: E731
    ours = StereoDiffusion(sd, cfg).text_to_stereo("a cat", 64, 48, zero).left
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), safety_checker=None)
    ref = pipe(
        "a cat",
        height=64,
        width=48,
        num_inference_steps=10,
        guidance_scale=guidance,
        generator=torch.Generator("cpu").manual_seed(3),
        output_type="pt",
    ).images
    assert ours.shape == ref.shape == (1, 3, 64, 48)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_depth_condition_equals_prepare_depth_map(tiny_sd_depth):
    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(str(tiny_sd_depth))
    depth = torch.rand(2, 40, 56, generator=torch.Generator().manual_seed(1)) * 7 + 1
    image = torch.rand(2, 3, 40, 56)
    ref = pipe.prepare_depth_map(image, depth, 2, False, torch.float32, CPU)
    ours = depth_condition(depth, (5, 7))
    assert ours.shape == ref.shape == (2, 1, 5, 7)
    assert torch.allclose(ours, ref, atol=1e-6)


# --- inversion -------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_inversion_step_matches_ddim_inverse_scheduler(sd, prediction_type):
    config = dict(sd.scheduler.config, prediction_type=prediction_type)
    forward = type(sd.scheduler).from_config(config)
    inverse = DDIMInverseScheduler.from_config(config)
    forward.set_timesteps(10)
    inverse.set_timesteps(10)
    assert inverse.timesteps.tolist() == forward.timesteps.flip(0).tolist()
    g = torch.Generator().manual_seed(0)
    from stereoconv.diffusion.inversion import alpha_bar, previous_timestep

    for t in inverse.timesteps.tolist():
        sample, output = torch.randn(2, 4, 6, 5, generator=g), torch.randn(2, 4, 6, 5, generator=g)
        ref = inverse.step(output, t, sample).prev_sample
        abar_from = alpha_bar(forward, previous_timestep(forward, t))
        ours = ddim_inversion_step(
            output, sample, abar_from, alpha_bar(forward, t), prediction_type
        )
        assert torch.allclose(ours, ref, atol=1e-6), t


def invert_then_denoise(sd, model, z0, steps):
    sd.scheduler.set_timesteps(steps)
    trajectory = ddim_invert(lambda z, t: model(z, t, -1, 1), z0, sd.scheduler)
    rec, _, _ = sample_stereo(model, sd.scheduler, trajectory[-1], None, StereoSchedule(None))
    return trajectory, rec


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_inversion_then_denoising_returns_the_latent(sd):
    z0 = sd.encode_images(images(1, 64, 64))
    # With a model whose output depends on t only, DDIM inversion is exact: float rounding only.
    table = torch.randn(1000, 1, 4, 1, 1, generator=torch.Generator().manual_seed(0))
    _, rec = invert_then_denoise(sd, lambda x, t, i, v: table[t].expand_as(x), z0, 50)
    assert relative_error(rec, z0) < 1e-4
    # With the tiny UNet, made smooth by scaling its output layer down (real SD's eps varies
    # slowly along the trajectory; random weights do not), 50 steps return z0 within ~3 %.
    with torch.no_grad():
        sd.unet.conv_out.weight.mul_(0.01)
        sd.unet.conv_out.bias.mul_(0.01)
    pipe = StereoDiffusion(sd, settings(steps=50))
    cond, _ = pipe.prompt_embeddings("", 1)
    model = lambda x, t, i, v: pipe.predict(x, t, v, cond, None, step=i)  # noqa: E731
    with torch.inference_mode():
        _, rec = invert_then_denoise(sd, model, z0, 50)
    assert relative_error(rec, z0) < 0.05


def test_null_text_inversion_lowers_the_reconstruction_error(sd):
    with torch.no_grad():
        sd.unet.conv_out.weight.mul_(0.01)
        sd.unet.conv_out.bias.mul_(0.01)
    pipe = StereoDiffusion(sd, settings(steps=20, guidance=7.5))
    z0 = sd.encode_images(images(2, 64, 64))
    cond, uncond = pipe.prompt_embeddings("a red motorcycle in a garage", 2)
    sd.scheduler.set_timesteps(20)
    with torch.inference_mode():
        trajectory = ddim_invert(lambda z, t: pipe.predict(z, t, 1, cond, None), z0, sd.scheduler)

    def reconstruct(uncond_at):
        with torch.inference_mode():
            model = lambda x, t, i, v: pipe.predict(x, t, v, cond, uncond_at(i), step=i)  # noqa: E731
            rec, _, _ = sample_stereo(
                model, sd.scheduler, trajectory[-1], None, StereoSchedule(None)
            )
        return relative_error(rec, z0)

    plain = reconstruct(lambda i: uncond)
    optimised = null_text_inversion(
        lambda z, t, e: pipe.predict(z, t, 1, e, None),
        [z.clone() for z in trajectory],
        cond,
        uncond,
        sd.scheduler,
        7.5,
        10,
    )
    tuned = reconstruct(lambda i: optimised[i])
    print(f"\nreconstruction error at w=7.5: plain {plain:.3f}, null-text {tuned:.3f}")
    assert tuned < 0.9 * plain


# --- stereo attention ------------------------------------------------------------------------


def run_image(sd, cfg, imgs, disparity, callback=None):
    return StereoDiffusion(sd, cfg).image_to_stereo(imgs, disparity, callback)


def test_uni_attention_leaves_the_left_view_unchanged(sd):
    imgs, d = images(2), uniform_disparity(2, 48, 64, 2)
    uni = run_image(sd, settings(attention="uni"), imgs, d)
    off = run_image(sd, settings(attention="off"), imgs, d)
    assert torch.allclose(uni.left, off.left, atol=1e-6)
    assert not torch.allclose(uni.right, off.right, atol=1e-3)
    bi = run_image(sd, settings(attention="bi"), imgs, d)
    assert not torch.allclose(bi.left, off.left, atol=1e-3)
    assert not torch.allclose(bi.right, off.right, atol=1e-3)


def test_uni_attention_equals_attention_by_hand(sd):
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"
    attn = sd.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    frames, tokens, channels = 2, 12, attn.to_q.in_features
    g = torch.Generator().manual_seed(0)
    left = torch.randn(frames, tokens, channels, generator=g)
    right = torch.roll(left, shifts=2, dims=1) + 0.1 * torch.randn(left.shape, generator=g)
    hidden = torch.cat([left, right])  # (view, frame)
    stereo = StereoStep.at(step=5, start=2, mode="uni", frames=frames)
    out = StereoAttnProcessor(name)(attn, hidden, stereo=stereo)

    def by_hand(queries_from, keys_from):
        h = attn.heads
        q, k, v = attn.to_q(queries_from), attn.to_k(keys_from), attn.to_v(keys_from)
        split = lambda x: x.view(frames, -1, h, x.shape[-1] // h).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        merged = (weights @ v).transpose(1, 2).reshape(frames, tokens, -1)
        return attn.to_out[0](merged)

    assert torch.allclose(out[frames:], by_hand(right, left), atol=1e-5)
    assert torch.allclose(out[:frames], by_hand(left, left), atol=1e-5)
    # before the start step the same call is plain self-attention
    early = StereoAttnProcessor(name)(attn, hidden, stereo=StereoStep.at(1, 2, "uni", frames))
    assert torch.allclose(early[frames:], by_hand(right, right), atol=1e-5)


def test_zero_disparity_with_uni_keeps_right_equal_to_left_at_every_step(sd):
    seen = []

    def record(info):
        if info["right"] is not None:
            seen.append(torch.allclose(info["left"], info["right"], atol=1e-5))

    run_image(
        sd, settings(attention="uni", spsmd_every=0), images(1), torch.zeros(1, 48, 64), record
    )
    assert len(seen) == 1 + 10 - 2 and all(seen)  # the shift, then every step from t' on


def test_original_processors_are_restored_also_after_an_exception(sd):
    before = {k: type(v) for k, v in sd.unet.attn_processors.items()}
    run_image(sd, settings(), images(1), uniform_disparity(1, 48, 64, 1))
    assert {k: type(v) for k, v in sd.unet.attn_processors.items()} == before
    with pytest.raises(RuntimeError, match="boom"), stereo_attention(sd.unet):
        assert all(isinstance(p, StereoAttnProcessor) for p in sd.unet.attn_processors.values())
        raise RuntimeError("boom")
    assert {k: type(v) for k, v in sd.unet.attn_processors.items()} == before


# --- shift and SPSMD -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
def test_shift_and_spsmd_with_a_uniform_disparity(sd, k):
    events = []
    run_image(
        sd, settings(spsmd_every=2), images(2), uniform_disparity(2, 48, 64, k), events.append
    )
    shift = [e for e in events if e["event"] == "shift"]
    assert len(shift) == 1 and shift[0]["step"] == 2
    left, right, mask = shift[0]["left"], shift[0]["right"], shift[0]["mask"]
    w = left.shape[-1]
    assert torch.equal(right[..., : w - k], left[..., k:])
    assert mask[..., : w - k].all() and not mask[..., w - k :].any()
    copies = [e for e in events if e["event"] == "step" and e["step"] in (4, 6, 8)]
    assert len(copies) == 3
    for e in copies:
        shifted, _ = shift_latent(e["left"], torch.full(e["left"].shape[:1] + (6, 8), float(k)))
        visible = e["mask"].unsqueeze(1).expand_as(shifted)
        assert torch.equal(e["right"][visible], shifted[visible])
    # between copies the right view evolves on its own
    e5 = next(e for e in events if e["event"] == "step" and e["step"] == 5)
    shifted, _ = shift_latent(e5["left"], torch.full((2, 6, 8), float(k)))
    assert not torch.allclose(e5["right"][..., : w - k], shifted[..., : w - k])


# --- batching and determinism ----------------------------------------------------------------


@pytest.mark.parametrize("deblur", [False, True])
def test_frames_together_equal_frames_one_by_one(sd, deblur):
    imgs = images(3, seed=5)
    d = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(2)) * 24
    cfg = settings(deblur=deblur, guidance=3.0)
    together = run_image(sd, cfg, imgs, d)
    # float32 kernels round differently at other batch sizes: 1e-4 is 1/40 of an 8-bit level
    for i in range(3):
        alone = run_image(sd, cfg, imgs[i : i + 1], d[i : i + 1])
        assert torch.allclose(alone.left, together.left[i : i + 1], atol=1e-4)
        assert torch.allclose(alone.right, together.right[i : i + 1], atol=1e-4)
    again = run_image(sd, cfg, imgs, d)
    assert torch.equal(again.right, together.right)


def test_skip_pre_shift_starts_from_the_inversion_at_the_shift_step(sd):
    imgs, d = images(1), uniform_disparity(1, 48, 64, 1)
    cfg = settings(skip_pre_shift=True)
    pipe = StereoDiffusion(sd, cfg)
    calls, shifts = [], []
    predict = pipe.predict

    def counted(x, t, views, *args, step=None, **kwargs):
        calls.append((step, x.shape[0]))
        return predict(x, t, views, *args, step=step, **kwargs)

    def keep_shift(event):
        if event["event"] == "shift":
            shifts.append(event)

    pipe.predict = counted
    out = pipe.image_to_stereo(imgs, d, callback=keep_shift)
    # 8 inversion steps (to the level of step 2 of 10), then steps 2..9 with both views
    assert [c for c in calls if c[0] is None] == [(None, 1)] * 8
    assert [c[0] for c in calls if c[0] is not None] == list(range(2, 10))
    sd.scheduler.set_timesteps(10)
    cond, _ = pipe.prompt_embeddings("", 1)
    z0 = sd.encode_images(imgs)
    with torch.inference_mode():
        full = ddim_invert(lambda z, t: predict(z, t, 1, cond, None), z0, sd.scheduler)
    assert torch.allclose(shifts[0]["left"], full[-1 - 2], atol=1e-6)
    assert out.right.shape == (1, 3, 48, 64)


# --- the hybrid's fill: ways to reach t' ------------------------------------------------------


def test_noised_trajectory_is_indexed_like_the_inversion(sd):
    """Entry -1 - i is the latent before loop step i, at that step's noise level, for both."""
    from stereoconv.diffusion.inversion import alpha_bar, noised_trajectory

    sd.scheduler.set_timesteps(10)
    z0 = torch.randn(2, 4, 6, 8, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(2))
    path = noised_trajectory(z0, eps, sd.scheduler, start=3)
    inverted = ddim_invert(lambda z, t: torch.zeros_like(z), z0, sd.scheduler, start=3)
    assert len(path) == len(inverted) == 10 - 3 + 1
    for i in range(3, 10):
        t = sd.scheduler.timesteps[i].item()
        abar = alpha_bar(sd.scheduler, t)
        torch.testing.assert_close(path[10 - i], abar.sqrt() * z0 + (1 - abar).sqrt() * eps)


def test_fill_without_stereo_attention_equals_the_fill_beside_the_left_view(sd):
    """With attention off the left view cannot reach the right one through the UNet, so the
    fill leaves it out (half the UNet images) and gives the same right view."""
    from stereoconv.diffusion.inversion import ddim_invert as invert
    from stereoconv.diffusion.sampler import sample_fill

    pipe = StereoDiffusion(sd, settings(attention="off", composite="hybrid"))
    left, right = images(2, seed=3), images(2, seed=4)
    known = torch.ones(2, 6, 8, dtype=torch.bool)
    known[:, :, 5:] = False
    alone = pipe.fill_right(left, right, known)

    sd.scheduler.set_timesteps(10)
    cond, uncond = pipe.prompt_embeddings("", 2)
    start = pipe.settings.shift_step
    with torch.inference_mode():
        latents = sd.encode_images(torch.cat([left, right]), 8)
        path = invert(
            lambda z, t: pipe.predict(z, t, 1, cond.repeat(2, 1, 1), None),
            latents,
            sd.scheduler,
            start,
        )
        model = lambda x, t, i, v: pipe.predict(x, t, v, cond, uncond, step=i)  # noqa: E731
        both = sample_fill(
            model, sd.scheduler, [z[:2] for z in path], [z[2:] for z in path], known, start
        )
        torch.testing.assert_close(alone, sd.decode_latents(both, 8), atol=1e-4, rtol=0)
