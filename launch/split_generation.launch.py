"""The GPU side of a split deployment: generation_node serving the generate action in namespace ``namespace``.

On the GPU host (same ROS_DOMAIN_ID as the robot; docs/split-deployment.md):
ros2 launch worldstereo_ros split_generation.launch.py backend:=worldstereo model_path:=/models/worldstereo \
    device:=cuda allowed_roots:="['/models']"
On the robot, imagination_node with -p generator:=remote -p generation_namespace:=/generation.
(without a ROS 2 install: worldstereo-ros launch split_generation.launch.py backend:=render_fill)
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "backend": ("render_fill", "generator backend run on this host"),
    "model_path": ("", "local weights folder (diffusion backends); inside allowed_roots"),
    "device": ("cpu", "torch device: cpu, cuda, cuda:1, ..."),
    "variant": ("memory-dmd", "WorldStereo model variant (worldstereo backend)"),
    "offload": ("none", "weights offload of the worldstereo backend: none, model, group"),
    "allowed_roots": ("['.', '~/.cache/worldstereo_ros']", "folders path parameters must resolve into (YAML list)"),
}


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument("namespace", default_value="generation",
                                  description="namespace of the generate action (the robot's generation_namespace)")]
    args += [DeclareLaunchArgument(name, default_value=default, description=text)
             for name, (default, text) in ARGUMENTS.items()]
    server = Node(
        package="worldstereo_ros",
        executable="generation_node",
        name="generation_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[{name: LaunchConfiguration(name) for name in ARGUMENTS}],
        output="screen",
    )
    return LaunchDescription([*args, server])
