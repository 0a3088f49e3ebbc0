"""Reading uploaded images from a request, in memory only. Terminal only.

Werkzeug spools file parts larger than 500 KB to a temporary file on disk;
:class:`InMemoryRequest` keeps every part in memory instead (the request body
is bounded by ``MAX_CONTENT_LENGTH``), so no image ever touches the disk.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request, request

from webapp.terminal.service import Upload

#: Longest file name kept for messages.
MAX_NAME = 80


class InMemoryRequest(Request):
    """A Flask request whose uploaded files are held in ``BytesIO`` buffers, never on disk."""

    def _get_file_stream(  # type: ignore[override]
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def uploaded_images(field: str = "image") -> list[Upload]:
    """The non-empty file parts named ``field`` of the current request, read into memory."""
    uploads = []
    for part in request.files.getlist(field):
        data = part.read()
        if not data and not part.filename:
            continue  # an empty <input type=file> sends an empty part
        name = "".join(c for c in (part.filename or "") if c.isprintable())[:MAX_NAME]
        uploads.append(Upload(name=name, data=data))
    return uploads
