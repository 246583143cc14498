"""StereoDiffusion (Wang et al., CVPR-W 2024) on diffusers components."""
