"""Evaluation: image metrics and benchmark helpers (no ROS imports)."""
