"""Exports of visits, assistance logs and requests by area and date range, as CSV or XLSX."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, render_template, request, stream_with_context

from ...extensions import db
from ...services import audit, exports
from .. import bp
from ..export_files import csv_stream, xlsx_stream
from ..forms import ExportArgs, day_range, parse
from ..i18n import lazy_gettext as _l
from .common import areas, scope

TITLES = {"visits": _l("Visits"), "assistance_logs": _l("Assistance logs"), "requests": _l("Requests")}
MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@bp.get("/exports")
def export_form():
    """Choose what to export."""
    return render_template("console/exports.html", areas=areas(), titles=TITLES)


@bp.get("/exports/download")
def export_download():
    """Stream the chosen export; the query is checked before the first byte goes out."""
    args = parse(ExportArgs(), request.args)
    since, until = day_range(args["date_from"], args["date_to"])
    kind, caller = args["kind"], scope()
    if args["area_id"]:
        caller.require_area(db.session, args["area_id"])  # a bad area is a 404 page, not a broken download
    # Audited before streaming: the audit hook writes these when the response starts, not per row.
    audit.record(caller.actor, "export", exports.households_of(db.session, caller, kind, args["area_id"], since,
                                                               until), entity=kind)
    rows = exports.rows(db.session, caller, kind, args["area_id"], since, until)
    columns, title = exports.COLUMNS[kind], str(TITLES[kind])
    body = csv_stream(columns, rows) if args["format"] == "csv" else xlsx_stream(columns, rows, title)
    stamp = "".join(str(d or "") for d in (args["date_from"], "_", args["date_to"])).replace("-", "")
    filename = f"{title}{stamp}.{args['format']}"
    ascii_name = f"{kind}{stamp}.{args['format']}"
    return Response(stream_with_context(body), mimetype=MIMETYPES[args["format"]], headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"})
