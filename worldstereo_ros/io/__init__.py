"""io layer of worldstereo_ros."""
