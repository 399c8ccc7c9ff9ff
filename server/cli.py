"""Command-line verbs: ``flask --app wsgi create-user``, ``seed-demo``."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import marshmallow as ma
from flask import current_app
from sqlalchemy import select

from schemas.accounts import UserSchema
from sync.errors import LianhuError
from sync.models import Area, User
from sync.policy import Actor, Scope

from . import worker
from .extensions import db
from .services import accounts


def _admin_scope() -> Scope:
    return Scope(Actor(user_id="cli", role="admin"))


def init_app(app) -> None:
    worker.init_app(app)  # worker, sweep

    @app.cli.command("create-user")
    @click.argument("username")
    @click.option("--role", type=click.Choice(["admin", "coordinator", "member"]), default="admin")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    @click.option("--display-name", default=None)
    @click.option("--area", "area", default=None, help="area id or name (coordinators and members)")
    def create_user(username, role, password, display_name, area):
        """Create a user (the first admin is made this way)."""
        area_id = None
        if area:
            found = db.session.scalar(select(Area).where((Area.id == area) | (Area.name == area)))
            if found is None:
                raise click.ClickException(f"no area {area!r}")
            area_id = found.id
        try:
            # the same rules as POST /users (username characters, lengths, password length)
            data = UserSchema().load({"username": username, "display_name": display_name or username,
                                      "role": role, "area_id": area_id, "password": password})
        except ma.ValidationError as exc:
            raise click.ClickException(f"validation_failed: {exc.messages}") from None
        try:
            user = accounts.create_user(db.session, _admin_scope(), data)
            db.session.commit()
        except LianhuError as exc:
            db.session.rollback()
            raise click.ClickException(f"{exc.code}: {exc.message} {exc.details or ''}") from None
        click.echo(f"created {role} {user.username} ({user.id})")

    @app.cli.command("import-households")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--area", required=True, help="area id or name the households belong to")
    @click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="JSON object from column headers to fields, for other layouts")
    @click.option("--dry-run", is_flag=True, help="validate and count, write nothing")
    @click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="where to write the error report (CSV); default FILE.errors.csv")
    @click.option("--as", "username", default=None, help="the user the import is recorded as (default: an admin)")
    def import_households(file, area, mapping, dry_run, report_path, username):
        """Import a household ledger (台账) from .xlsx or .csv (UTF-8 or GBK)."""
        import json

        from sync.policy import actor_for

        from .services.ledger_import import import_ledger, read_rows

        user = db.session.scalar(select(User).where(User.username == username) if username else
                                 select(User).where(User.role == "admin").order_by(User.created_at).limit(1))
        if user is None:
            raise click.ClickException("no such user; create an admin first (flask create-user)")
        column_map = json.loads(mapping.read_text(encoding="utf-8")) if mapping else None
        _, total = read_rows(file)
        try:
            with click.progressbar(length=max(total, 1), label="导入", file=sys.stderr) as bar:
                report = import_ledger(db.session, actor_for(db.session, user), area, file, dry_run=dry_run,
                                       mapping=column_map, progress=bar.update)
        except (LianhuError, ValueError) as exc:
            db.session.rollback()
            raise click.ClickException(getattr(exc, "message", str(exc))) from None
        summary = report.summary()
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        if report.errors:
            target = report_path or file.with_name(file.name + ".errors.csv")
            target.write_text(report.error_csv(), encoding="utf-8-sig")
            click.echo(f"error report: {target}")

    @app.cli.command("purge-attachments")
    def purge_attachments():
        """Remove attachments no record refers to, and uploads left unfinished (ATTACHMENT_ORPHAN_HOURS)."""
        from .services.attachments import purge_orphans
        from .storage import current_storage

        report = purge_orphans(db.session, current_storage(), current_app.config["ATTACHMENT_ORPHAN_HOURS"])
        click.echo(f"purged {report['files']} unreferenced files and {report['partials']} unfinished uploads")

    @app.cli.command("settings")
    def show_settings():
        """Print every setting: name, default and meaning."""
        from .config import SETTINGS

        for name, (default, meaning) in SETTINGS.items():
            click.echo(f"{name:34} {default if default is not None else '(unset)':24} {meaning}")

    @app.cli.command("purge")
    @click.option("--dry-run", is_flag=True, help="count what would be removed, remove nothing")
    def purge(dry_run):
        """Remove what the retention settings no longer keep (op log, batches, handled quarantine,
        change log past HISTORY_DAYS, audit log past AUDIT_DAYS)."""
        from .retention import RetentionPolicy
        from .retention import purge as run_purge

        counts = run_purge(db.session, RetentionPolicy.from_config(current_app.config), dry_run=dry_run)
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
        verb = "would remove" if dry_run else "removed"
        click.echo(", ".join(f"{verb} {count} from {name}" for name, count in counts.items()))

    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="do nothing when the database already has users")
    @click.option("--households", default=200, show_default=True)
    def seed_demo(if_empty, households):
        """Load a realistic demo community; prints a coordinator login and an enrollment code."""
        from .demo import seed

        if if_empty and db.session.scalar(select(User.id).limit(1)) is not None:
            click.echo("database already has data; demo not loaded")
            return
        info = seed(db.session, households, current_app.config["ENROLLMENT_CODE_TTL_MINUTES"])
        db.session.commit()
        click.echo("Demo community loaded: " + info["community"])
        click.echo(f"  coordinator login: {info['coordinator']} / {info['password']}")
        click.echo(f"  admin login:       {info['admin']} / {info['password']}")
        click.echo(f"  tablet enrollment code for member {info['member']}: {info['code']} "
                   f"(valid {current_app.config['ENROLLMENT_CODE_TTL_MINUTES']} minutes)")
