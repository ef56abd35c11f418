"""CSV imports of members and historical transactions (docs/IMPORT.md): upload a file, read the
report with its line numbers, list past runs. Owners and program managers only.

The file is the request body (``Content-Type: text/csv``) or the field ``file`` of a
``multipart/form-data`` form (what a browser's file input sends). It is streamed to a temporary
file, never held in memory, and refused with 413 ``import_too_large`` beyond
``MAX_UPLOAD_BYTES``: larger files go through ``loyalty import`` on the command line, which
has no limit and shows a progress bar.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import PathParameter, QueryParameter

from loyalty.app.api.params import ProgramId, problem_responses
from loyalty.app.api.schemas import INT64_MAX
from loyalty.domain.csv_rows import ImportKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.imports import ImportRunView, Imports

from .auth import PROGRAM_CONFIGURATORS, requires_role
from .responses import problems

#: The largest file the admin API takes (about 250,000 members or 400,000 transactions).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Room for the multipart envelope around a file of the largest size.
_MULTIPART_SLACK = 64 * 1024
_CHUNK = 1 << 16

RunId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Import run id")]
SkipBadLines = Annotated[
    bool,
    QueryParameter(
        description="Import the good lines of a file that has bad ones (they are reported)"
    ),
]
DryRun = Annotated[bool, QueryParameter(description="Check the file only; import nothing")]
Filename = Annotated[
    str | None,
    QueryParameter(
        max_length=255,
        description="The file's name for the report (a multipart upload names it itself)",
    ),
]
_PROBLEMS = problems(
    400,
    401,
    403,
    404,
    503,
    s404="No such program (or one of another merchant) or import run",
)
_UPLOAD_RESPONSES = {
    200: ResponseSpec(data_container=ImportRunView, description="The report of a dry run"),
    **_PROBLEMS,
    **problem_responses({413: "The file is larger than 20 MiB (import_too_large)"}),
}
_UPLOAD_DESCRIPTION = (
    "Send the CSV as the request body (`Content-Type: text/csv`) or as the field `file` of a "
    "`multipart/form-data` form. The whole file is checked first: the answer is the report "
    "(`rows_total`, `rows_imported`, `rows_already_present`, `rows_invalid`, and the first "
    "200 `problems` with their line numbers). A file with bad lines imports nothing "
    "(`status` `rejected`) unless `skip_bad_lines` is set. Rows already present (an earlier "
    "run of the same file) are counted, never imported twice. `dry_run` checks only (200, "
    "nothing stored); otherwise the run is stored (201) and audited. At most 20 MiB; larger "
    "files: `loyalty import` on the command line. Roles: owner, program_manager."
)


@dataclass(frozen=True)
class _UploadOptions:
    skip_bad_lines: bool
    dry_run: bool
    filename: str | None


def _upload_options(
    skip_bad_lines: SkipBadLines = False, dry_run: DryRun = False, filename: Filename = None
) -> _UploadOptions:
    """The query parameters both uploads take."""
    return _UploadOptions(skip_bad_lines, dry_run, filename)


_UPLOAD_OPTIONS = {"options": Provide(_upload_options, sync_to_thread=False)}


@dataclass
class _CsvUpload(Operation):
    """The OpenAPI operation of an upload: its body is the CSV file (the handler streams it
    itself, so Litestar sees no ``data`` parameter to describe)."""

    def __post_init__(self) -> None:
        file = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        self.request_body = RequestBody(
            required=True,
            description="The CSV file (UTF-8; header row; comma or semicolon)",
            content={
                "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT, properties={"file": file}, required=["file"]
                    )
                ),
            },
        )


def _imports(request: Request[Any, Any, Any]) -> Imports:
    imports: Imports = request.app.state.imports
    return imports


class ImportController(Controller):
    path = "/programs/{program_id:int}/imports"
    tags = ["Admin: imports"]
    guards = [requires_role(*PROGRAM_CONFIGURATORS)]

    @post(
        "/members",
        responses=_UPLOAD_RESPONSES,
        request_max_body_size=MAX_UPLOAD_BYTES + _MULTIPART_SLACK,
        operation_class=_CsvUpload,
        dependencies=_UPLOAD_OPTIONS,
        summary="Import members from a CSV file (or check it: dry_run)",
        description=_UPLOAD_DESCRIPTION,
    )
    async def import_members(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        options: NamedDependency[_UploadOptions],
    ) -> Response[ImportRunView]:
        return await _upload(request, staff, program_id, ImportKind.MEMBERS, options)

    @post(
        "/transactions",
        responses=_UPLOAD_RESPONSES,
        request_max_body_size=MAX_UPLOAD_BYTES + _MULTIPART_SLACK,
        operation_class=_CsvUpload,
        dependencies=_UPLOAD_OPTIONS,
        summary="Import historical transactions from a CSV file (or check it: dry_run)",
        description=_UPLOAD_DESCRIPTION,
    )
    async def import_transactions(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        options: NamedDependency[_UploadOptions],
    ) -> Response[ImportRunView]:
        return await _upload(request, staff, program_id, ImportKind.TRANSACTIONS, options)

    @get(
        "/",
        responses=_PROBLEMS,
        summary="The program's imports, newest first",
        description="Pages by id: pass the last `run_id` as `before_id`. "
        "Roles: owner, program_manager.",
    )
    async def list_imports(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        before_id: Annotated[int | None, QueryParameter(gt=0, le=INT64_MAX)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[ImportRunView]:
        return await _imports(request).runs(staff, program_id, before_id=before_id, limit=limit)

    @get(
        "/{run_id:int}",
        responses=_PROBLEMS,
        summary="One import with its report",
        description="The counts and the first problems with their line numbers. "
        "Roles: owner, program_manager.",
    )
    async def get_import(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        run_id: RunId,
    ) -> ImportRunView:
        return await _imports(request).run(staff, program_id, run_id)


async def _upload(
    request: Request[Any, Any, Any],
    staff: Staff,
    program_id: int,
    kind: ImportKind,
    options: _UploadOptions,
) -> Response[ImportRunView]:
    async with _received_file(request) as (path, sent_name):
        outcome = await _imports(request).import_file(
            path,
            kind=kind,
            program_id=program_id,
            filename=sent_name or options.filename or f"{kind}.csv",
            staff=staff,
            skip_bad_lines=options.skip_bad_lines,
            dry_run=options.dry_run,
        )
    run = outcome.run
    if run.run_id is None:
        return Response(run, status_code=200)
    location = f"{request.url.path}".rsplit("/", 1)[0] + f"/{run.run_id}"
    return Response(run, status_code=201, headers={"Location": location})


@contextlib.asynccontextmanager
async def _received_file(
    request: Request[Any, Any, Any],
) -> AsyncIterator[tuple[Path, str | None]]:
    """The uploaded file on disk (removed afterwards), and the name a form gave it."""
    handle, name = tempfile.mkstemp(prefix="loyalty-import-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            sent_name = await _copy_body(request, out)
        yield path, sent_name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


async def _copy_body(request: Request[Any, Any, Any], out: IO[bytes]) -> str | None:
    """Write the file of the request to ``out``; the name a multipart form gave it."""
    try:
        if request.content_type[0] == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED,
                    "send the CSV file in the form field 'file'",
                    field="file",
                )
            written = 0
            while chunk := await upload.read(_CHUNK):
                written += len(chunk)
                if written > MAX_UPLOAD_BYTES:
                    raise RequestEntityTooLarge
                out.write(chunk)
            await upload.close()
            return Path(upload.filename).name or None
        async for chunk in request.stream():
            out.write(chunk)
        if out.tell() > MAX_UPLOAD_BYTES:
            raise RequestEntityTooLarge
        return None
    except RequestEntityTooLarge:
        raise DomainError(
            ErrorCode.IMPORT_TOO_LARGE,
            f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; import it with "
            f"the command line: loyalty import members|transactions FILE --program-id N",
            limit_bytes=MAX_UPLOAD_BYTES,
        ) from None
