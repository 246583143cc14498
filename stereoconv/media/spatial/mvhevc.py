"""MV-HEVC (multiview HEVC, ITU-T H.265 Annex G) for Apple spatial video, made from two ordinary
x265 streams.

The x265 inside the `av` wheels is built without multiview support (`num-views` is an unknown
option there, see docs/vision-pro.md), so the two views are encoded as two single-layer HEVC
streams with identical settings and a fixed GOP structure (no scene cuts, fixed B-frames, closed
GOPs), then joined access unit by access unit into one two-layer stream:

- layer 0 (the base layer, what any HEVC decoder shows) is the left view as x265 wrote it;
- layer 1 is the right view: its NAL units get nuh_layer_id 1, its SPS and PPS new ids (1 and
  15) so that they do not replace the base layer's, and its slices refer to PPS 15;
- the VPS gains the multi-layer extension (H.265 F.7.3.2.1.1): two layers, multiview
  scalability, view ids 0 (left) and 1 (right), layer 1 independent of layer 0 (no inter-view
  prediction: "simulcast" MV-HEVC, like the MVHEVCS-C conformance stream), a Multiview Main
  profile for the two-layer output set, and poc_lsb_not_present_flag for layer 1 so that the
  right view's IDR slice headers need no change.

Changing a slice's pic_parameter_set_id from ue(0) (1 bit) to ue(15) (9 bits) makes its header
exactly one byte longer, so the slice data behind it stays byte-aligned and is copied unchanged.

Bit-level work happens on RBSPs (emulation prevention removed: hevc.py) and is re-escaped on the
way out. The encoder that feeds the join is encoder.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from stereoconv.media.spatial.hevc import (
    PPS,
    SEI_PREFIX,
    SEI_SUFFIX,
    SPS,
    VPS,
    BitReader,
    BitWriter,
    MvHevcError,
    annexb,
    escape,
    is_irap,
    is_vcl,
    nal_header,
    nal_layer,
    nal_type,
    split_annexb,
    unescape,
)

RIGHT_SPS_ID = 1
RIGHT_PPS_ID = 15  # ue(15) is 9 bits where ue(0) is 1: slice headers grow by exactly one byte
MULTIVIEW_MAIN = 6  # general_profile_idc of the Multiview Main profile (H.265 G.11.1.1)
MULTIVIEW_MASK = 1 << 14  # scalability_mask_flag[1] (multiview) in the 16-bit mask, MSB first


# --- parameter sets --------------------------------------------------------------------------

PTL_BITS = 2 + 1 + 5 + 32 + 4 + 43 + 1 + 8  # profile_tier_level(1, 0): one sub-layer


@dataclass(frozen=True)
class SpsInfo:
    sps_id: int
    chroma_format_idc: int
    width: int
    height: int
    conformance_window: tuple[int, int, int, int] | None
    bit_depth_luma: int
    bit_depth_chroma: int
    profile_idc: int
    tier: int
    level_idc: int


def _check_one_sub_layer(max_sub_layers_minus1: int, what: str) -> None:
    if max_sub_layers_minus1 != 0:
        raise MvHevcError(f"{what} has {max_sub_layers_minus1 + 1} temporal sub-layers; need 1")


def parse_sps(nal: bytes) -> SpsInfo:
    r = BitReader(unescape(nal[2:]))
    r.u(4)  # sps_video_parameter_set_id
    _check_one_sub_layer(r.u(3), "the SPS")
    r.u(1)  # sps_temporal_id_nesting_flag
    ptl_start = r.pos
    r.u(2)
    tier, profile_idc = r.u(1), r.u(5)
    r.pos = ptl_start + PTL_BITS - 8
    level_idc = r.u(8)
    sps_id = r.ue()
    chroma = r.ue()
    if chroma == 3:
        r.u(1)  # separate_colour_plane_flag
    width, height = r.ue(), r.ue()
    window = (r.ue(), r.ue(), r.ue(), r.ue()) if r.u(1) else None
    luma, chroma_depth = r.ue() + 8, r.ue() + 8
    return SpsInfo(
        sps_id, chroma, width, height, window, luma, chroma_depth, profile_idc, tier, level_idc
    )


def right_view_sps(nal: bytes) -> bytes:
    """The right view's SPS as a layer-1 parameter set with sps_seq_parameter_set_id 1.

    With nuh_layer_id 1 its first 3-bit field is sps_ext_or_max_sub_layers_minus1; 0 (not 7)
    keeps the ordinary syntax, which is what x265 wrote."""
    r = BitReader(unescape(nal[2:]))
    end = r.payload_end()
    w = BitWriter()
    w.copy(r, 4 + 3 + 1 + PTL_BITS)
    if r.ue() != 0:
        raise MvHevcError("expected the encoder's SPS to have id 0")
    w.ue(RIGHT_SPS_ID)
    w.copy(r, end - r.pos)
    return nal_header(SPS, 1, nal[1] & 7) + escape(w.rbsp())


def right_view_pps(nal: bytes) -> bytes:
    """The right view's PPS as a layer-1 parameter set: id 15, referring to SPS 1."""
    r = BitReader(unescape(nal[2:]))
    end = r.payload_end()
    if r.ue() != 0 or r.ue() != 0:
        raise MvHevcError("expected the encoder's PPS to have id 0 and refer to SPS 0")
    w = BitWriter()
    w.ue(RIGHT_PPS_ID)
    w.ue(RIGHT_SPS_ID)
    w.copy(r, end - r.pos)
    return nal_header(PPS, 1, nal[1] & 7) + escape(w.rbsp())


def right_view_slice(nal: bytes) -> bytes:
    """A right-view slice segment as a layer-1 one referring to PPS 15. Only the first byte of
    the RBSP changes (plus one inserted byte): first_slice_segment_in_pic_flag,
    [no_output_of_prior_pics_flag], then slice_pic_parameter_set_id."""
    rbsp = unescape(nal[2:])
    head = 2 if is_irap(nal) else 1  # flag bits before the id
    first = rbsp[0]
    if (first >> (7 - head)) & 1 != 1:  # ue(0) is a single 1 bit
        raise MvHevcError("expected the encoder's slices to refer to PPS 0")
    code = RIGHT_PPS_ID + 1  # ue(15): 0000 10000
    code_bits = 9
    rest = first & ((1 << (7 - head)) - 1)  # the 7 - head bits after the id
    bits = ((first >> (8 - head)) << (code_bits + 7 - head)) | (code << (7 - head)) | rest
    new = bits.to_bytes(2, "big") + rbsp[1:]
    return nal_header(nal_type(nal), 1, nal[1] & 7) + escape(new)


# --- the VPS with the multi-layer extension ---------------------------------------------------


def _level_for(luma_samples_per_second: float, luma_picture_size: int) -> int:
    """The lowest HEVC level (general_level_idc = 30 x level) for a picture size and sample
    rate (H.265 Table A.8, Main tier)."""
    levels = [  # level_idc, MaxLumaPs, MaxLumaSr
        (30, 36864, 552960),
        (60, 122880, 3686400),
        (63, 245760, 7372800),
        (90, 552960, 16588800),
        (93, 983040, 33177600),
        (120, 2228224, 66846720),
        (123, 2228224, 133693440),
        (150, 8912896, 267386880),
        (153, 8912896, 534773760),
        (156, 8912896, 1069547520),
        (180, 35651584, 1069547520),
        (183, 35651584, 2139095040),
        (186, 35651584, 4278190080),
    ]
    for level, max_ps, max_sr in levels:
        if luma_picture_size <= max_ps and luma_samples_per_second <= max_sr:
            return level
    return 186


def _multiview_main_ptl(w: BitWriter, tier: int, level_idc: int) -> None:
    """profile_tier_level(1, 0) of the Multiview Main profile."""
    w.u(2, 0)  # general_profile_space
    w.u(1, tier)
    w.u(5, MULTIVIEW_MAIN)
    w.u(32, 1 << (31 - MULTIVIEW_MAIN))  # general_profile_compatibility_flag[6]
    w.u(1, 1)  # general_progressive_source_flag
    w.u(1, 0)  # general_interlaced_source_flag
    w.u(1, 0)  # general_non_packed_constraint_flag
    w.u(1, 1)  # general_frame_only_constraint_flag
    # 8-bit 4:2:0 constraint flags, as Main: max_12bit, max_10bit, max_8bit, max_422chroma,
    # max_420chroma, max_monochrome, intra, one_picture_only, lower_bit_rate; 34 reserved bits
    for flag in (1, 1, 1, 1, 1, 0, 0, 0, 1):
        w.u(1, flag)
    w.u(34, 0)
    w.u(1, 0)  # general_reserved_zero_bit (no inbld for this profile)
    w.u(8, level_idc)


def multiview_vps(nal: bytes, sps: SpsInfo, fps: float) -> bytes:
    """The base layer's VPS rewritten for two layers (H.265 7.3.2.1 and F.7.3.2.1.1)."""
    r = BitReader(unescape(nal[2:]))
    w = BitWriter()
    w.u(4, r.u(4))  # vps_video_parameter_set_id
    internal, available = r.u(1), r.u(1)
    if not (internal and available):
        raise MvHevcError("the encoder's VPS has no internal base layer")
    w.u(1, 1)
    w.u(1, 1)
    if r.u(6) != 0:
        raise MvHevcError("the encoder's VPS already has several layers")
    w.u(6, 1)  # vps_max_layers_minus1
    max_sub_layers_minus1 = r.u(3)
    _check_one_sub_layer(max_sub_layers_minus1, "the VPS")
    w.u(3, max_sub_layers_minus1)
    w.u(1, r.u(1))  # vps_temporal_id_nesting_flag
    w.u(16, r.u(16))  # vps_reserved_0xffff_16bits
    ptl_start = r.pos
    w.copy(r, PTL_BITS)  # the base layer's profile_tier_level
    ordering_present = r.u(1)
    w.u(1, ordering_present)
    dpb = []
    for _ in range(max_sub_layers_minus1 + 1 if ordering_present else 1):
        values = (r.ue(), r.ue(), r.ue())  # max_dec_pic_buffering_minus1, reorder, latency+1
        dpb.append(values)
        for v in values:
            w.ue(v)
    max_layer_id = r.u(6)
    other_sets = r.ue()
    r.pos += other_sets * (max_layer_id + 1)  # their layer_id_included_flags
    w.u(6, 1)  # vps_max_layer_id
    w.ue(1)  # vps_num_layer_sets_minus1: {0} and {0, 1}
    w.u(1, 1)  # layer_id_included_flag[1][0]
    w.u(1, 1)  # layer_id_included_flag[1][1]
    timing = r.u(1)
    w.u(1, timing)
    if timing:
        w.copy(r, 64)  # vps_num_units_in_tick, vps_time_scale
        proportional = r.u(1)
        w.u(1, proportional)
        if proportional:
            w.ue(r.ue())
        if r.ue() != 0:
            raise MvHevcError("the encoder's VPS carries HRD parameters")
        w.ue(0)
    w.u(1, 1)  # vps_extension_flag
    while not w.aligned:
        w.u(1, 1)  # vps_extension_alignment_bit_equal_to_one

    end = r.pos
    r.pos = ptl_start + PTL_BITS - 8
    base_level = r.u(8)
    r.pos = end
    view_size = sps.width * sps.height
    # the two-layer set decodes twice the samples of one view at the same picture size
    level = max(base_level, _level_for(2 * view_size * fps, view_size))
    _vps_extension(w, sps, base_level, level, dpb[-1])
    return nal_header(VPS, 0, nal[1] & 7) + escape(w.rbsp())


def _vps_extension(
    w: BitWriter, sps: SpsInfo, base_level: int, level: int, dpb: tuple[int, int, int]
) -> None:
    """vps_extension() (H.265 F.7.3.2.1.1) of two independent views; dpb: the base layer's
    (max_dec_pic_buffering_minus1, max_num_reorder_pics, max_latency_increase_plus1)."""
    w.u(8, base_level)  # profile_tier_level(0, 0) of the base layer: its level only
    w.u(1, 0)  # splitting_flag
    w.u(16, MULTIVIEW_MASK)  # scalability_mask_flag[0..15]: multiview only
    w.u(3, 0)  # dimension_id_len_minus1[0]: 1 bit
    w.u(1, 0)  # vps_nuh_layer_id_present_flag: layer_id_in_nuh[1] = 1
    w.u(1, 1)  # dimension_id[1][0]: ViewOrderIdx 1
    w.u(4, 1)  # view_id_len
    w.u(1, 0)  # view_id_val[0]: the left view
    w.u(1, 1)  # view_id_val[1]: the right view
    w.u(1, 0)  # direct_dependency_flag[1][0]: layer 1 is independent
    w.ue(0)  # num_add_layer_sets (two independent layers)
    w.u(1, 0)  # vps_sub_layers_max_minus1_present_flag
    w.u(1, 0)  # max_tid_ref_present_flag
    w.u(1, 0)  # default_ref_layers_active_flag
    w.ue(2)  # vps_num_profile_tier_level_minus1: [0] base VPS, [1] above, [2] multiview
    w.u(1, 1)  # vps_profile_present_flag[2]
    _multiview_main_ptl(w, sps.tier, level)
    w.ue(0)  # num_add_olss
    w.u(2, 0)  # default_output_layer_idc: every layer of an output layer set is output
    w.u(2, 1)  # profile_tier_level_idx[1][0]: the base layer's
    w.u(2, 2)  # profile_tier_level_idx[1][1]: Multiview Main
    w.ue(0)  # vps_num_rep_formats_minus1
    w.u(16, sps.width)  # rep_format(): pic_width_vps_in_luma_samples
    w.u(16, sps.height)
    w.u(1, 1)  # chroma_and_bit_depth_vps_present_flag
    w.u(2, sps.chroma_format_idc)
    if sps.chroma_format_idc == 3:
        w.u(1, 0)  # separate_colour_plane_vps_flag
    w.u(4, sps.bit_depth_luma - 8)
    w.u(4, sps.bit_depth_chroma - 8)
    w.u(1, sps.conformance_window is not None)  # conformance_window_vps_flag
    if sps.conformance_window is not None:
        for offset in sps.conformance_window:
            w.ue(offset)
    w.u(1, 0)  # max_one_active_ref_layer_flag
    w.u(1, 1)  # vps_poc_lsb_aligned_flag: both views have the same structure
    w.u(1, 1)  # poc_lsb_not_present_flag[1]: IDR slices of layer 1 have no POC LSBs
    # dpb_size(): output layer set 1, its one sub-layer
    w.u(1, 0)  # sub_layer_flag_info_present_flag[1]
    buffering, reorder, latency = dpb
    w.ue(buffering)  # max_vps_dec_pic_buffering_minus1[1][0][0]
    w.ue(buffering)  # max_vps_dec_pic_buffering_minus1[1][1][0]
    w.ue(reorder)  # max_vps_num_reorder_pics[1][0]
    w.ue(latency)  # max_vps_latency_increase_plus1[1][0]
    w.ue(0)  # direct_dep_type_len_minus2
    w.u(1, 0)  # direct_dependency_all_layers_flag (no dependencies to type)
    w.ue(0)  # vps_non_vui_extension_length
    w.u(1, 0)  # vps_vui_present_flag
    w.u(1, 0)  # vps_extension2_flag


def reference_displays_sei() -> bytes:
    """A prefix SEI with three_dimensional_reference_displays_info (payload type 176, H.265
    G.14.2.3): view id 0 is the left view, view id 1 the right. The reference display width is
    left unspecified (exponent 0 at precision 0: no mantissa bits)."""
    w = BitWriter()
    w.ue(0)  # prec_ref_display_width
    w.u(1, 0)  # ref_viewing_distance_flag
    w.ue(0)  # num_ref_displays_minus1
    w.ue(0)  # left_view_id[0]
    w.ue(1)  # right_view_id[0]
    w.u(6, 0)  # exponent_ref_display_width[0]
    w.u(1, 0)  # additional_shift_present_flag[0]
    w.u(1, 0)  # three_dimensional_reference_displays_extension_flag
    if not w.aligned:  # payload_bit_equal_to_one, payload_bit_equal_to_zero...
        w.u(1, 1)
        while not w.aligned:
            w.u(1, 0)
    payload = w.value.to_bytes(w.size // 8, "big")
    message = bytes([176, len(payload)]) + payload
    return nal_header(SEI_PREFIX, 0, 1) + escape(message + b"\x80")  # rbsp_trailing_bits


class ViewJoiner:
    """Joins the access units of two single-view x265 streams (Annex B, one access unit per
    packet, parameter sets repeated at each IDR) into MV-HEVC access units without parameter
    sets, which go out of band (`parameter_sets`, for hvcC / lhvC)."""

    def __init__(self, frame_rate: float):
        self.frame_rate = frame_rate
        self.parameter_sets: list[bytes] | None = None
        self._sources: tuple[list[bytes], list[bytes]] | None = None
        self.sei = reference_displays_sei()

    def _set_parameter_sets(self, left: dict[int, bytes], right: dict[int, bytes]) -> None:
        for view, sets in (("left", left), ("right", right)):
            if set(sets) != {VPS, SPS, PPS}:
                raise MvHevcError(f"the {view} view's keyframe lacks a VPS, SPS or PPS")
        source = ([left[VPS], left[SPS], left[PPS]], [right[SPS], right[PPS]])
        if self._sources is not None:
            if source != self._sources:
                raise MvHevcError("the encoder changed its parameter sets mid-stream")
            return
        sps = parse_sps(left[SPS])
        if sps != parse_sps(right[SPS]):
            raise MvHevcError("the two views were encoded with different formats")
        if sps.bit_depth_luma != 8 or sps.chroma_format_idc != 1:
            raise MvHevcError("MV-HEVC Multiview Main needs 8-bit 4:2:0 video")
        self._sources = source
        self.parameter_sets = [
            multiview_vps(left[VPS], sps, self.frame_rate),
            left[SPS],
            left[PPS],
            right_view_sps(right[SPS]),
            right_view_pps(right[PPS]),
        ]

    def join(self, left: bytes, right: bytes) -> bytes:
        """One access unit of each view (Annex B) -> one two-layer access unit (Annex B)."""
        left_nals, right_nals = split_annexb(left), split_annexb(right)
        parameters: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        layers: tuple[list[bytes], list[bytes]] = ([], [])
        for i, nals in enumerate((left_nals, right_nals)):
            for nal in nals:
                kind = nal_type(nal)
                if nal_layer(nal) != 0 or (nal[1] & 7) != 1:
                    raise MvHevcError("expected single-layer NAL units of temporal id 0")
                if kind in (VPS, SPS, PPS):
                    parameters[i][kind] = nal
                elif kind < 32 or (i == 0 and kind in (SEI_PREFIX, SEI_SUFFIX)):
                    layers[i].append(nal)  # the right view's SEIs and AUDs are dropped
        left_vcl = [nal_type(n) for n in layers[0] if is_vcl(n)]
        right_vcl = [nal_type(n) for n in layers[1] if is_vcl(n)]
        if not left_vcl or left_vcl != right_vcl:
            raise MvHevcError(
                f"the two views went out of step (NAL unit types {left_vcl} and {right_vcl})"
            )
        irap = 16 <= left_vcl[0] <= 23
        if irap:
            self._set_parameter_sets(*parameters)
        elif parameters[0] or parameters[1]:
            raise MvHevcError("parameter sets outside a keyframe")
        if self.parameter_sets is None:
            raise MvHevcError("the stream does not start with a keyframe")
        out = ([self.sei] if irap else []) + layers[0]
        out += [right_view_slice(n) for n in layers[1]]
        return annexb(out)
