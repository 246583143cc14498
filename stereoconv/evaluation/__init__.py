"""The evaluation harness: stereo datasets with a real right view, the paper's and our own
protocol, the methods compared, and the report (issue 6). See docs/evaluation.md."""
