"""What several test modules share, and only that: clips and their decoding (clips.py), hostile
and damaged files (hostile.py), the robustness matrix's cases (robustness_cases.py), a converter
that proves work runs at once (meeting.py), the CLI runner and its error check (cli.py), and the
stereo scenes the tests read (scenes.py). Test modules import from here, never from each other."""
