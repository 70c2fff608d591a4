"""The one way a benchmark writes its table into a document: between the markers
``<!-- begin benchmarks/<script> -->`` and ``<!-- end benchmarks/<script> -->``, which the document must have."""
from __future__ import annotations

from pathlib import Path


def write_between_markers(path: Path, script: str, text: str) -> None:
    """Replace what lies between ``script``'s markers in the file ``path`` by ``text``."""
    begin_marker, end_marker = f"<!-- begin benchmarks/{script} -->", f"<!-- end benchmarks/{script} -->"
    content = path.read_text()
    if begin_marker not in content or end_marker not in content:
        raise ValueError(f"{path} has no markers {begin_marker} … {end_marker} to write the table between")
    begin, end = content.index(begin_marker) + len(begin_marker), content.index(end_marker)
    path.write_text(content[:begin] + "\n" + text + "\n" + content[end:])
