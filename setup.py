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
        print(f"histocnn: building the extension for {sys.executable} in {build_dir}")
        configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir)]
        if not (build_dir / "CMakeCache.txt").exists():
            # An existing build folder keeps its interpreter (a venv's python is the same binary).
            configure += ["-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", f"-DPython_EXECUTABLE={sys.executable}"]
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_histocnn",
                               "-j", str(os.cpu_count() or 2)])
        out_dir.mkdir(parents=True, exist_ok=True)
        # The extension finds libhistocnn beside itself (RPATH $ORIGIN): copy the SONAME file only.
        for lib in [*(build_dir / "python" / "histocnn").glob("_histocnn*.so"), build_dir / "libhistocnn.so.0"]:
            self.copy_file(str(lib), str(out_dir / lib.name))


setup(ext_modules=[CMakeExtension("histocnn._histocnn")], cmdclass={"build_ext": CMakeBuild})
