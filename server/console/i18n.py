"""The one translation layer: Flask-Babel with a zh_CN catalog; other languages add a catalog beside it.

Message ids are English; ``translations/<locale>/LC_MESSAGES/messages.po`` holds each language, compiled to
``messages.mo`` (``pybabel compile -d server/console/translations``; a test checks the two agree). Babel names
the catalog by the full locale: ``zh_CN`` is read from ``zh_Hans_CN``.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, format_datetime, get_locale, gettext, lazy_gettext  # noqa: F401  (re-exported)

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")
# Coordinators read times on the community's clock; the database keeps UTC.
TIMEZONE = "Asia/Shanghai"

babel = Babel()


def select_locale() -> str:
    chosen = request.args.get("lang") or session.get("lang")
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


def localtime(value, pattern: str = "yyyy-MM-dd HH:mm") -> str:
    return format_datetime(value, pattern) if value is not None else ""


# The words for stored values (states, kinds, urgencies) as people read them.
LABELS = {
    "review_state": {"pending": lazy_gettext("Pending"), "approved": lazy_gettext("Approved"),
                     "flagged": lazy_gettext("Flagged")},
    "status": {"open": lazy_gettext("Open"), "assigned": lazy_gettext("Assigned"),
               "resolved": lazy_gettext("Resolved"), "closed": lazy_gettext("Closed"),
               "done": lazy_gettext("Done"), "retried": lazy_gettext("Retried"),
               "discarded": lazy_gettext("Discarded")},
    "urgency": {"low": lazy_gettext("Low"), "normal": lazy_gettext("Normal"), "urgent": lazy_gettext("Urgent")},
    "visit_kind": {"routine": lazy_gettext("Routine"), "assistance": lazy_gettext("Assistance"),
                   "follow_up": lazy_gettext("Follow-up"), "feedback": lazy_gettext("Feedback")},
    "event": {"assign": lazy_gettext("Assigned"), "resolve": lazy_gettext("Resolved"),
              "feedback_delivered": lazy_gettext("Feedback delivered"), "reopen": lazy_gettext("Reopened"),
              "comment": lazy_gettext("Comment")},
    "role": {"admin": lazy_gettext("Admin"), "coordinator": lazy_gettext("Coordinator"),
             "member": lazy_gettext("Member")},
    "timeline": {"visit": lazy_gettext("Visit"), "assistance_log": lazy_gettext("Assistance"),
                 "request": lazy_gettext("Request")},
    "organisation_kind": {"government": lazy_gettext("Government office"), "school": lazy_gettext("School"),
                          "enterprise": lazy_gettext("Enterprise"),
                          "public_institution": lazy_gettext("Public institution"), "other": lazy_gettext("Other")},
    "grant": {"none": lazy_gettext("None: ids and categories only"),
              "contact": lazy_gettext("Contact: names and masked phones")},
    "event_type": {"request.raised": lazy_gettext("Request raised"),
                   "request.assigned": lazy_gettext("Request assigned"),
                   "request.resolved": lazy_gettext("Request resolved"),
                   "request.closed": lazy_gettext("Request closed"),
                   "request.reopened": lazy_gettext("Request reopened"),
                   "household.overdue": lazy_gettext("Household overdue for a visit")},
    "delivery": {"pending": lazy_gettext("Queued"), "retrying": lazy_gettext("Retrying"),
                 "delivered": lazy_gettext("Delivered"), "failed": lazy_gettext("Failed")},
    "channel": {"in_person": lazy_gettext("In person"), "phone": lazy_gettext("Phone"), "sms": lazy_gettext("SMS"),
                "notice": lazy_gettext("Notice")},
}


def label(kind: str, value) -> str:
    """A stored value in the reader's language; an unknown one is shown as stored."""
    if value is None:
        return ""
    return str(LABELS.get(kind, {}).get(value, value))


def problems(value) -> str:
    """A validation error's messages (a list, or nested per field) as one line."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {problems(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(problems(v) for v in value)
    return str(value)


def html_lang() -> str:
    """The page's ``lang`` attribute: ``zh-CN`` for ``zh_CN``."""
    locale = get_locale()
    return "-".join(part for part in (locale.language, locale.territory) if part) if locale else "zh-CN"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", TIMEZONE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["problems"] = problems
    app.jinja_env.globals["label"] = label
    app.jinja_env.globals["html_lang"] = html_lang
