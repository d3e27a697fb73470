"""Dockerfile <-> Apptainer definition file translation (pure functions over text).

``dockerfile_to_def(text, name)`` and ``def_to_dockerfile(text, name)`` return a
:class:`Translation` (the new text and one :class:`Note` per fix or deviation)
or raise :class:`~hpcbridge.errors.InputError` for what cannot be translated.
"""

from __future__ import annotations

from hpcbridge.recipe.notes import Note, Translation
from hpcbridge.recipe.to_def import dockerfile_to_def
from hpcbridge.recipe.to_docker import def_to_dockerfile

__all__ = ["Note", "Translation", "def_to_dockerfile", "dockerfile_to_def"]
