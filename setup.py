"""Builds the C++ extension with the project's CMake; metadata lives in pyproject.toml."""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(os.environ.get("HISTOCNN_PIP_BUILD_DIR", ROOT / "build-pip"))
        subprocess.check_call([
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}", "-DHISTOCNN_BUILD_TESTS=OFF", "-DHISTOCNN_BUILD_CLI=OFF",
        ])
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_histocnn", "-j", str(os.cpu_count() or 2)])
        out_dir.mkdir(parents=True, exist_ok=True)
        built = build_dir / "python" / "histocnn"
        for lib in list(built.glob("_histocnn*.so")) + list(build_dir.glob("libhistocnn.so*")):
            self.copy_file(str(lib), str(out_dir / lib.name))


setup(ext_modules=[CMakeExtension("histocnn._histocnn")], cmdclass={"build_ext": CMakeBuild})
