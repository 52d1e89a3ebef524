"""Dataset readers: RGB-D sequences (7-Scenes folders, TUM RGB-D), Middlebury stereo, procedural scenes and
single snapshots from files. Below the pipeline, so evaluation, the CLI and the nodes read data without
depending on each other."""
