"""The bpy-free core shared by the add-on, the CLI and the worker."""

#: The tool's version; blender_manifest.toml and pyproject.toml carry the same.
__version__ = "0.1.0"
