"""Packaging details pyproject.toml cannot express: the root ``alembic/`` folder ships in the wheel.

The repository keeps ``alembic.ini`` and ``alembic/`` at its root (``alembic upgrade head`` works
there as always); the same files are installed as the package ``convostore.migrations``, so
``convostore upgrade`` works with only the wheel installed. The package list is found, not written
out, so a new subpackage under ``src/convostore`` ships without touching this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "convostore.migrations", "convostore.migrations.versions"],
    package_dir={"": "src", "convostore.migrations": "alembic"},
    package_data={
        "convostore": ["py.typed", "web/templates/*.html", "web/static/*.css"],
        "convostore.migrations": ["script.py.mako"],
    },
)
