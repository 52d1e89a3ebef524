"""ros layer of worldstereo_ros."""
