"""Replay a 7-Scenes-style RGB-D folder as a camera (image, depth, camera_info, /tf).

ros2 launch worldstereo_ros replay.launch.py folder:=/data/7scenes-redkitchen allowed_roots:="['/data']" rate_hz:=10.0
"""

import os

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

# large images over shared memory and big socket buffers (docs/dds-tuning.md); Fast DDS 3.x reads this
# variable (FASTRTPS_DEFAULT_PROFILES_FILE still works there but is deprecated and warns)
DDS_PROFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "fastdds.xml")


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("folder", description="RGB-D folder in the 7-Scenes layout"),
        DeclareLaunchArgument("rate_hz", default_value="10.0"),
        DeclareLaunchArgument("fixed_frame", default_value="map"),
        DeclareLaunchArgument("camera_frame", default_value="camera_color_optical_frame"),
        DeclareLaunchArgument("loop", default_value="false"),
        DeclareLaunchArgument("allowed_roots", default_value="['.', '~/.cache/worldstereo_ros']",
                              description="folders the replayed folder must lie in (YAML list)"),
        DeclareLaunchArgument("dds_profile", default_value=DDS_PROFILE,
                              description="Fast DDS XML profile of the node (docs/dds-tuning.md)"),
    ]
    node = Node(
        package="worldstereo_ros",
        executable="replay_node",
        name="replay_node",
        parameters=[{name: LaunchConfiguration(name) for name in
                     ("folder", "rate_hz", "fixed_frame", "camera_frame", "loop", "allowed_roots")}],
        output="screen",
    )
    env = SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("dds_profile"))
    return LaunchDescription([*args, env, node])
