"""Stereo self-attention (paper Sec. 3.3, Algorithm 1) as diffusers attention processors.

The UNet batch is laid out as (guidance, view, frame): for each guidance branch, all left views,
then all right views. From the shift step on, in every self-attention layer:
- uni: the queries of both views attend to the left view's keys and values, so the left view is
  computed exactly as without stereo attention and the right one follows it;
- bi: the queries of both views attend to the tokens of both views together;
- off: plain self-attention.
Cross-attention layers are untouched. What changes per step arrives as the `stereo` argument
through `cross_attention_kwargs`; the processor itself holds only its layer's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StereoStep:
    """What the stereo attention layers need to know at one UNet call. The processors read
    only `active`, `mode` and `frames`, so a compiled UNet is not specialised on the step."""

    step: int  # index of the denoising step
    mode: str  # uni | bi | off
    frames: int  # frames per view in the batch (2 views follow each other per guidance branch)
    active: bool  # stereo attention is on at this step

    @classmethod
    def at(cls, step: int, start: int, mode: str, frames: int) -> StereoStep:
        """The state at `step` when stereo attention runs from step `start` on."""
        return cls(step, mode, frames, mode != "off" and step >= start)


def stereo_keys_values(hidden: torch.Tensor, stereo: StereoStep, project) -> torch.Tensor:
    """The tokens each query attends to, projected by `project` (to_k or to_v).

    hidden: (guidance * 2 * frames, tokens, channels) -> (same batch, tokens or 2 * tokens, dim).
    """
    batch, tokens, channels = hidden.shape
    views = hidden.view(batch // (2 * stereo.frames), 2, stereo.frames, tokens, channels)
    if stereo.mode == "uni":
        left = project(views[:, 0])  # (g, frames, tokens, dim): only the left view is projected
        return left.unsqueeze(1).expand(-1, 2, -1, -1, -1).reshape(batch, tokens, -1)
    if stereo.mode == "bi":
        both = project(torch.cat([views[:, 0], views[:, 1]], dim=2))  # (g, frames, 2 tokens, dim)
        return both.unsqueeze(1).expand(-1, 2, -1, -1, -1).reshape(batch, 2 * tokens, -1)
    raise ValueError(f"stereo attention mode must be uni or bi, not {stereo.mode!r}")


class StereoAttnProcessor:
    """diffusers' AttnProcessor2_0 (PyTorch SDPA) with stereo keys and values in self-attention."""

    def __init__(self, name: str):
        self.name = name
        self.self_attention = name.endswith("attn1.processor")

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        stereo: StereoStep | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(
                attention_mask, sequence_length, batch_size
            )
            attention_mask = attention_mask.view(
                batch_size, attn.heads, -1, attention_mask.shape[-1]
            )
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        stereo_on = (
            self.self_attention
            and encoder_hidden_states is None
            and stereo is not None
            and stereo.active
        )
        if stereo_on:
            key = stereo_keys_values(hidden_states, stereo, attn.to_k)
            value = stereo_keys_values(hidden_states, stereo, attn.to_v)
        else:
            if encoder_hidden_states is None:
                encoder_hidden_states = hidden_states
            elif attn.norm_cross:
                encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
            key = attn.to_k(encoder_hidden_states)
            value = attn.to_v(encoder_hidden_states)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(
                batch_size, channel, height, width
            )
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def install(unet) -> None:
    """Install StereoAttnProcessor in every layer for good (a compiled UNet must keep the same
    processors between calls); without a `stereo` argument it is plain SDPA attention."""
    unet.set_attn_processor({name: StereoAttnProcessor(name) for name in unet.attn_processors})


@contextlib.contextmanager
def stereo_attention(unet) -> Iterator[None]:
    """Install StereoAttnProcessor in every attention layer of `unet` for the duration of the
    block; the original processors are restored afterwards, also after an exception. A UNet
    that has them installed for good keeps them."""
    original = dict(unet.attn_processors)
    if all(isinstance(p, StereoAttnProcessor) for p in original.values()):
        yield
        return
    unet.set_attn_processor({name: StereoAttnProcessor(name) for name in original})
    try:
        yield
    finally:
        unet.set_attn_processor(original)
