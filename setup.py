"""Build hook: compile the BPF objects into the package when a wheel is built.

The objects are architecture- and kernel-independent (CO-RE), but they are
never compiled at run time: a wheel without them would fail on first use.
"""
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
import buildbpf


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        buildbpf.build_all(verbose=True)
        super().run()


setup(cmdclass={"build_py": BuildPyWithBpf})
