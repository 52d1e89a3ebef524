"""The released WorldStereo model (camera / memory / memory-DMD) as a generator backend, from local weights.

Every torch/diffusers/transformers import of the project's diffusion code stays inside this subpackage; importing
the subpackage itself is cheap: its modules load only when the backend registry
(``generation.base``) or the command line (``worldstereo_ros.cli.diffusion``) asks for them, so they import torch,
diffusers and transformers at their top. Facts about the release (architecture, key layout,
samplers) are in ``docs/worldstereo-backend.md``.
"""
