"""Package discovery that pyproject.toml cannot express on its own.

The firmware bridges live in `firmware-bridges/` (a folder name with a dash, fixed by the project
layout) but import as `firmware_bridges`, so their sub-packages are found under the folder and
renamed here.
"""
from setuptools import find_packages, setup

BRIDGES_DIR = "firmware-bridges"
bridges = ["firmware_bridges"] + [f"firmware_bridges.{p}" for p in find_packages(BRIDGES_DIR)]
apps = find_packages(include=["edge", "edge.*", "hub", "hub.*", "shared", "shared.*", "provisioning", "provisioning.*"])

setup(packages=apps + bridges, package_dir={"firmware_bridges": BRIDGES_DIR})
