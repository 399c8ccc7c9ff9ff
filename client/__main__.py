"""``python -m client enroll|record-visit|sync|status``: a tablet on the command line."""
from __future__ import annotations

import argparse
import json
import mimetypes
import os
import socket
import sys

from .store import Store
from .tablet import DeviceRevoked, SyncUnavailable, Tablet, UpdateRequired
from .transport import ApiError, NetworkError, Transport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description="A Lianhu field tablet.")
    parser.add_argument("--store", default=os.environ.get("LIANHU_CLIENT_STORE", "lianhu-tablet.db"),
                        help="the tablet's local SQLite file (env LIANHU_CLIENT_STORE)")
    commands = parser.add_subparsers(dest="command", required=True)
    enroll = commands.add_parser("enroll", help="enroll this tablet with a code from a coordinator")
    enroll.add_argument("--server", required=True, help="e.g. http://127.0.0.1:8000")
    enroll.add_argument("--code", required=True)
    enroll.add_argument("--name", default=socket.gethostname())
    visit = commands.add_parser("record-visit", help="record a visit offline (sent at the next sync)")
    visit.add_argument("--household", required=True, help="household id")
    visit.add_argument("--kind", default="routine", choices=["routine", "assistance", "follow_up", "feedback"])
    visit.add_argument("--summary", default=None)
    visit.add_argument("--minutes", type=int, default=None)
    visit.add_argument("--photo", action="append", default=[], metavar="FILE",
                       help="a photo or scanned document to attach (repeatable); uploaded at the next sync")
    commands.add_parser("sync", help="push the outbox, then pull until done")
    commands.add_parser("status", help="what the tablet holds and has not sent yet")
    commands.add_parser("households", help="the households in this tablet's scope")
    args = parser.parse_args(argv)

    store = Store(args.store)
    try:
        if args.command == "enroll":
            tablet = Tablet.enroll(store, Transport(args.server), args.code, args.name)
            print(f"enrolled as {tablet.user['username']} (device {tablet.device_id}); run `sync` next")
            return 0
        tablet = Tablet(store)
        if tablet.token is None:
            print("this tablet is not enrolled: run `enroll --server URL --code CODE` first", file=sys.stderr)
            return 2
        if args.command == "record-visit":
            if store.view("household", args.household) is None:
                print(f"no household {args.household} on this tablet (sync first?)", file=sys.stderr)
                return 2
            photos = []
            for path in args.photo:
                with open(path, "rb") as f:
                    photos.append((f.read(), mimetypes.guess_type(path)[0], os.path.basename(path)))
            visit_id = tablet.record_visit(args.household, args.kind, args.summary, duration_minutes=args.minutes,
                                           photos=photos)
            print(f"visit {visit_id} recorded; {store.counts()['outbox']} op(s) waiting for sync")
        elif args.command == "sync":
            report = tablet.sync()
            print(f"pushed {report.pushed} ({report.acknowledged} acknowledged, {report.rejected} rejected), "
                  f"pulled {report.pulled} changes, {len(report.conflicts)} conflicts, {report.retries} retries, "
                  f"{report.uploaded} file(s) uploaded, {store.counts()['uploads_waiting']} waiting")
            for rejected in store.rejected():
                print(f"  rejected: {rejected['entity']} {rejected['id']} {rejected['action']}: "
                      f"{rejected['error'].get('code')}")
        elif args.command == "status":
            print(json.dumps(tablet.status(), ensure_ascii=False, indent=2))
        elif args.command == "households":
            for household in store.view_all("household"):
                print(f"{household['id']}  {household.get('address')}  {household.get('head_name') or ''}")
        return 0
    except DeviceRevoked:
        print("this tablet was revoked by a coordinator: its data has been wiped", file=sys.stderr)
        return 3
    except UpdateRequired as exc:
        print(f"the server needs a newer app: {exc}", file=sys.stderr)
        return 4
    except (SyncUnavailable, NetworkError) as exc:
        print(f"the server cannot be reached now; nothing is lost, sync again later ({exc})", file=sys.stderr)
        return 5
    except ApiError as exc:
        print(f"the server refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 6
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
