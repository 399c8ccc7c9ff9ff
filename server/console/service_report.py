"""The workplace members' service report as a file (CSV or XLSX), for the API and the console alike."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, stream_with_context

from ..services.registrations import REPORT_COLUMNS
from .export_files import csv_stream, xlsx_stream
from .i18n import label
from .i18n import lazy_gettext as _l

MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def report_file(report: dict, file_format: str) -> Response:
    """A download with headers (and kinds of organisation) in the reader's language: Chinese by default."""
    title = str(_l("Service report"))
    rows = ({**row, "organisation_kind": label("organisation_kind", row["organisation_kind"])}
            for row in report["rows"])
    body = csv_stream(REPORT_COLUMNS, rows) if file_format == "csv" else xlsx_stream(REPORT_COLUMNS, rows, title)
    period = "".join(str(d or "") for d in (report["date_from"], "_", report["date_to"])).replace("-", "")
    filename = f"{title}{period}.{file_format}"
    return Response(stream_with_context(body), mimetype=MIMETYPES[file_format], headers={
        "Content-Disposition": f"attachment; filename=\"service_report{period}.{file_format}\"; "
                               f"filename*=UTF-8''{quote(filename)}"})
