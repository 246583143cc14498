"""stereoconv: turn 2D photos and videos into stereo 3D for XR headsets."""

__version__ = "0.1.0"
