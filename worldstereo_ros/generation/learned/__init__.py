"""The ``learned`` generator: FillNet (model.py), its input (conditioning.py), forward–backward training data
(data.py), training (train.py, ``worldstereo-ros train`` via cli.py), weights files (weights.py), the backend
(backend.py) and its fill-protocol evaluation and speed scripts (evaluate.py, speed.py).
See docs/learned-generator.md for the model card."""
