"""Apple spatial video (--layout spatial): hevc.py (NAL units and bits), mvhevc.py (two x265
streams joined into one two-layer MV-HEVC stream), encoder.py (the chunk encoder, on
media.encode's base), vexu.py (Apple's vexu / hfov boxes, on media.mp4box's helpers)."""
