"""generation layer of worldstereo_ros."""
