"""Replay a 7-Scenes-style RGB-D folder as a camera (image, depth, camera_info, /tf).

ros2 launch worldstereo_ros replay.launch.py folder:=/path/to/7scenes-redkitchen rate_hz:=10.0
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("folder", description="RGB-D folder in the 7-Scenes layout"),
        DeclareLaunchArgument("rate_hz", default_value="10.0"),
        DeclareLaunchArgument("fixed_frame", default_value="map"),
        DeclareLaunchArgument("camera_frame", default_value="camera_color_optical_frame"),
        DeclareLaunchArgument("loop", default_value="false"),
    ]
    node = Node(
        package="worldstereo_ros",
        executable="replay_node",
        name="replay_node",
        parameters=[{name: LaunchConfiguration(name) for name in
                     ("folder", "rate_hz", "fixed_frame", "camera_frame", "loop")}],
        output="screen",
    )
    return LaunchDescription([*args, node])
