"""Build script: the package layout lives in pyproject.toml; this file only adds extensions."""

from setuptools import setup

setup()
