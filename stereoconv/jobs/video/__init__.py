"""Convert a video: frames stream through depth and a backend in batches, are encoded in chunks
of consecutive frames kept in a work folder beside the output, and are joined with the source's
audio, subtitles and metadata at the end.

A chunk is the unit of work and of resume: its file appears only once it is complete, so a
killed job, run again with the same command, converts only the chunks that are missing. The
temporal state a frame depends on (scene cuts, smoothed depth range) is rebuilt from the
WINDOW frames before each chunk, so chunks converted in any order, by any worker, give the same
frames as one pass; the trained shot detector, which looks ahead, runs once over the whole
range beside the chunks, and each chunk reads the cuts of its frames as they are decided.

The package, in the order of the data flow:

    job.py          the job: options, chunks, checks, the work folder (resume), planned cuts
    shots.py        --shots transnet: a pass beside the chunks finds where the shots start
    frames.py       frames and their depth in batches, decoded ahead; views back to arrays
    convergence.py  --convergence auto: a first pass that plans the screen plane per shot
    chunk.py        one chunk, in numbered steps
    records.py      typed per-frame and per-chunk statistics (the chunk's JSON file)
    finish.py       the chunks joined into the output

Where chunks run (this process, Ray actors) is stereoconv.runner's business.
"""
