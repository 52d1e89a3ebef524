"""memory layer of worldstereo_ros."""
