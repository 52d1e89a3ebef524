"""eval layer of worldstereo_ros."""
