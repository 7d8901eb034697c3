"""Package layout that pyproject.toml cannot express on its own.

The top-level ``resources/`` folder (demo case, model zoo, icons, training configs) ships as the
data-only package ``mriviewer.resources``, so installed code reads it with
``importlib.resources.files("mriviewer.resources")``. Each of its sub-folders is listed as a
package of data files, so every file in it (h5, safetensors, json, png, svg, toml, md) lands in
the wheel. Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

RESOURCES = Path(__file__).resolve().parent / "resources"


def resource_packages() -> list[str]:
    """``mriviewer.resources`` and one package name per sub-folder of resources/."""
    names = ["mriviewer.resources"]
    for folder in sorted(p for p in RESOURCES.rglob("*") if p.is_dir()):
        rel = folder.relative_to(RESOURCES)
        if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
            continue
        names.append(".".join(("mriviewer.resources", *rel.parts)))
    return names


DATA_PACKAGES = resource_packages()

setup(
    packages=find_packages(include=["mriviewer", "mriviewer.*"]) + DATA_PACKAGES,
    package_dir={"mriviewer.resources": "resources"},
    package_data={name: ["*"] for name in DATA_PACKAGES},
    exclude_package_data={name: ["*.pyc"] for name in DATA_PACKAGES},
)
