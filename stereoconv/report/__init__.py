"""--report: stats.py (the flicker and parallax definitions), summary.py (the numbers of a
report), plots.py, html.py (the page), write.py (thumbnails, provenance and the files)."""
