"""worldstereo_ros: imagine camera views along candidate robot paths and fuse them into one 3D cache.

The library (geometry, memory, generation, pipeline, io, eval) never imports rclpy; ``worldstereo_ros.ros``
holds the ROS 2 nodes and message conversions.
"""

# The generated interfaces (worldstereo_ros.msg, worldstereo_ros.action) may be installed into another
# directory on sys.path than this source tree (e.g. a virtual environment's site-packages while the
# source is used in place): extend_path lets both directories form one package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
