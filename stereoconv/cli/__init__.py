"""The `stereoconv` command: main.py (the group and the error policy; `stereoconv.cli.main:main`
is the entry point), options.py (options made from the config's fields), convert.py (image,
images, video, preview), generate.py (text, depth), evaluate.py (eval)."""
