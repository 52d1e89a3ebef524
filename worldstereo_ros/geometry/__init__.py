"""geometry layer of worldstereo_ros."""
