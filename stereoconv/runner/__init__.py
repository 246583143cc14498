"""Where the work runs: threads.py (decoding ahead, encoding behind), local.py (in this process),
ray.py (Ray actors, one per GPU). The runner knows nothing about diffusion."""
