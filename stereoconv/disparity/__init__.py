"""The disparity stage: how every job gets the disparity of its frames in pixels.

estimate.py   a depth model (relative disparity of frames)
maps.py       depth given from outside: map files for pictures, depth videos or folders for video
shots.py      scene cuts and the smoothed normalisation range of a video's frames
comfort.py    border bands, and the screen plane of --convergence auto
plan.py       one object for every job: range -> smoothing and cuts -> convergence -> pixels

The stage's choices (DEPTH_KINDS, DEFAULT_DEPTH_MODEL) live in stereoconv.config with the
other settings' choices.
"""
