"""Only the wheel tag lives here (everything else is in pyproject.toml).

The wheel carries BPF objects compiled for one architecture (``make build`` passes
``-D__TARGET_ARCH_<arch>``), so it must not claim ``py3-none-any``: it is tagged
``py3-none-<platform>``, which pip refuses to install on another architecture.
"""

from __future__ import annotations

from setuptools import setup

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70 takes it from the wheel package
    from wheel.bdist_wheel import bdist_wheel


class ArchWheel(bdist_wheel):  # type: ignore[misc]
    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"bdist_wheel": ArchWheel})
