"""Backends: frames and their disparity in, the two views out."""
