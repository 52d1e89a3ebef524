"""pip install for the Python side of worldstereo_ros (no ROS install needed).

With a sourced ROS 2, colcon builds this repository through CMakeLists.txt instead (package.xml
build type ament_cmake), because the interfaces in msg/ and action/ need rosidl.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "worldstereo_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.generation.learned": ["weights/*.safetensors"]},  # the learned backend's weights
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    python_requires=">=3.10",
    zip_safe=False,
    maintainer="worldstereo_ros maintainers",
    description="Imagine camera views along candidate robot paths and fuse them into one 3D cache (ROS 2).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "worldstereo-ros = worldstereo_ros.cli:main",
            "replay_node = worldstereo_ros.ros.replay_node:main",
            "imagination_node = worldstereo_ros.ros.imagination_node:main",
            "stereo_node = worldstereo_ros.ros.stereo_node:main",
            "generation_node = worldstereo_ros.ros.generation_node:main",
        ],
    },
)
