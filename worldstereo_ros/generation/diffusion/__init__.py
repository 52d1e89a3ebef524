"""The released WorldStereo model (camera / memory / memory-DMD) as a generator backend, from local weights.

Every torch/diffusers/transformers import of the project's diffusion code stays inside this subpackage; importing
the subpackage itself is cheap (modules are imported where used). Facts about the release (architecture, key layout,
samplers) are in ``docs/worldstereo-backend.md``.
"""
