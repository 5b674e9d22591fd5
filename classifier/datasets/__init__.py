"""Labelled comments for training and evaluation: the public sets in ``shared/data`` and files users bring.

- :mod:`classifier.datasets.public`: the public sets, each file's URL, commit, checksum and licence, the
  label-mapping table, and a loader per set (:func:`load_public`).
- :mod:`classifier.datasets.files`: the files users bring, CSV, JSON lines, WordPress (WXR, a
  ``wp_comments`` dump) and Disqus exports (:func:`load_labelled_file`).
- :mod:`classifier.datasets.reading`: reading files with line numbers and parsing cells, for both.

Every loader returns :class:`~classifier.comment.LabelledComment` values whose ``labels`` use the names in
:data:`~classifier.comment.ATTRIBUTES`. An attribute that a source cannot speak to is left out (unknown),
never set to 0. Bad files raise :class:`~classifier.errors.DatasetError` as ``path:line: message``.

The names below are re-exported, the same objects: to patch a module global a loader reads (such as
``YOUTUBE_VIDEOS``), patch it in the module that holds it.
"""

from classifier.datasets.files import (
    LABEL_WORDS,
    LOADERS,
    SkipCallback,
    SkipTally,
    load_csv,
    load_disqus,
    load_jsonl,
    load_labelled_file,
    load_wp_comments_csv,
    load_wxr,
    wordpress_example,
)
from classifier.datasets.public import (
    CIVIL_THRESHOLD,
    LABEL_MAPPING,
    PUBLIC_SETS,
    YOUTUBE_VIDEOS,
    PublicFile,
    PublicSet,
    load_public,
    load_public_set,
    public_manifest,
    sha256_file,
    verify_public_set,
)

__all__ = [
    "CIVIL_THRESHOLD",
    "LABEL_MAPPING",
    "LABEL_WORDS",
    "LOADERS",
    "PUBLIC_SETS",
    "YOUTUBE_VIDEOS",
    "PublicFile",
    "PublicSet",
    "SkipCallback",
    "SkipTally",
    "load_csv",
    "load_disqus",
    "load_jsonl",
    "load_labelled_file",
    "load_public",
    "load_public_set",
    "load_wp_comments_csv",
    "load_wxr",
    "public_manifest",
    "sha256_file",
    "verify_public_set",
    "wordpress_example",
]
