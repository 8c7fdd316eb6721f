"""Compile the gettext catalogs (.po → .mo) whenever the package is built or installed."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in Path("content/locale").glob("*/LC_MESSAGES/*.po"):
            locale = po.parent.parent.name
            target = Path(self.build_lib) / po.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as source:
                catalog = read_po(source, locale=locale)
            with target.open("wb") as compiled:
                write_mo(compiled, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
