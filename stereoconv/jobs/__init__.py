"""Jobs: files in, files out, around a StereoConverter."""
