"""Importing a household ledger (台账) from the browser: the same import as ``flask import-households``."""
from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from flask import Response, abort, current_app, render_template, request, session

from ...extensions import db
from ...services.ledger_import import import_ledger
from .. import bp
from ..forms import LedgerUpload, parse
from .common import areas, scope

MAX_LEDGER_BYTES = 64 * 1024 * 1024
REPORTS_KEPT = 10


def _reports_dir() -> Path:
    folder = Path(current_app.config["INSTANCE_PATH"]) / "import_reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@bp.get("/import")
def ledger_form():
    """Choose a ledger file and the area its households belong to."""
    return render_template("console/ledger.html", areas=areas(), report=None, token=None)


@bp.post("/import")
def ledger_upload():
    """Run the import (or a dry run) and show its summary, with the error report to download."""
    request.max_content_length = MAX_LEDGER_BYTES
    args = parse(LedgerUpload(), request.form)
    caller = scope()
    upload = request.files.get("file")
    suffix = Path(upload.filename or "").suffix.lower() if upload else ""
    if upload is None or suffix not in (".xlsx", ".csv"):
        from sync.errors import ValidationFailedError

        raise ValidationFailedError(details={"file": ["choose an .xlsx or .csv ledger"]})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"ledger{suffix}"
        upload.save(path)
        try:
            report = import_ledger(db.session, caller.actor, args["area_id"], path, dry_run=args["dry_run"])
        except ValueError as exc:
            from sync.errors import ValidationFailedError

            raise ValidationFailedError(str(exc), {"file": [str(exc)]}) from None
    token = None
    if report.errors:
        token = secrets.token_urlsafe(16)
        (_reports_dir() / f"{token}.csv").write_text(report.error_csv(), encoding="utf-8-sig")
        session["import_reports"] = (session.get("import_reports", []) + [token])[-REPORTS_KEPT:]
    return render_template("console/ledger.html", areas=areas(), report=report, token=token)


@bp.get("/import/reports/<token>.csv")
def ledger_report(token: str):
    """The error report of an import this session ran."""
    if token not in session.get("import_reports", []):
        abort(404)
    path = _reports_dir() / f"{token}.csv"
    if not path.is_file():
        abort(404)
    return Response(path.read_bytes(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="import-errors.csv"'})
