"""The disparity stage: how every job gets the disparity of its frames in pixels.

estimate.py   a depth model (relative disparity of frames)
maps.py       depth given from outside: map files for pictures, depth videos or folders for video
shots.py      scene cuts and the smoothed normalisation range of a video's frames
comfort.py    border bands, and the screen plane of --convergence auto
plan.py       one object for every job: range -> smoothing and cuts -> convergence -> pixels

This module itself holds only the stage's choices, so that the config can name them without
importing torch.
"""

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEPTH_KINDS = ("disparity-px", "relative-disparity", "depth")
