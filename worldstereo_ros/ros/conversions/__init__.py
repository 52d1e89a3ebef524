"""Conversions between ROS 2 messages and numpy, without rclpy.

Every converter validates its input and raises :class:`worldstereo_ros.errors.ConversionError`
naming the field and the problem; none mutates its input.
"""
