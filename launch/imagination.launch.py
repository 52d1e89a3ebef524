"""Start imagination_node with config/worldstereo.yaml and the camera topics remapped.

ros2 launch worldstereo_ros imagination.launch.py image:=/camera/color/image_raw depth:=/camera/depth/image_rect_raw \
    camera_info:=/camera/color/camera_info
(without a ROS 2 install: worldstereo-ros launch imagination.launch.py image:=... )
"""

import os

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

# installed: share/worldstereo_ros/{launch,config}; in the source tree: <repo>/{launch,config}
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "worldstereo.yaml")
# large images over shared memory and big socket buffers (docs/dds-tuning.md); Fast DDS 3.x reads this
# variable (FASTRTPS_DEFAULT_PROFILES_FILE still works there but is deprecated and warns)
DDS_PROFILE = os.path.join(os.path.dirname(CONFIG), "fastdds.xml")
TOPICS = {"image": "/camera/image", "depth": "/camera/depth", "camera_info": "/camera/camera_info",
          "planned_path": "/plan"}


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument("config", default_value=CONFIG, description="parameter file of imagination_node"),
            DeclareLaunchArgument("dds_profile", default_value=DDS_PROFILE,
                                  description="Fast DDS XML profile of the node (docs/dds-tuning.md)")]
    args += [DeclareLaunchArgument(name, default_value=topic, description=f"topic subscribed as {name}")
             for name, topic in TOPICS.items()]
    imagination = Node(
        package="worldstereo_ros",
        executable="imagination_node",
        name="imagination_node",
        parameters=[LaunchConfiguration("config")],
        remappings=[(name, LaunchConfiguration(name)) for name in TOPICS],
        output="screen",
    )
    env = SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("dds_profile"))
    return LaunchDescription([*args, env, imagination])
