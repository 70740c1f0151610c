"""``skillshare`` console script: ``serve`` runs a node; ``seed`` fills the
database with demo data; ``backup`` and ``restore`` (docs/operations.md);
``rotate-data-key`` re-encrypts under the newest data key."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web
from loguru import logger
from pymongo.errors import PyMongoError

from .config import ConfigError, Settings, load_settings
from .logs import configure_logging
from .backup.archive import ArchiveError
from .private_files import PRIVATE_UMASK
from .storage.database import EmbeddedDatabaseUnavailable
from .storage.rotation import ROTATION_BATCH
from .storage.schema import IndexBuildFailed


MAX_ERROR_CHARS = 300  # a driver error (server selection lists every host) kept to one line


def _init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn, environment=settings.env, send_default_pii=False,
        traces_sample_rate=0.0,
    )


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _freeze_after_startup(app: web.Application) -> None:
    from .gc_tuning import freeze_startup_heap, log_frozen

    log_frozen("node", freeze_startup_heap())


def serve(settings: Settings) -> None:
    from .app import create_app

    _init_sentry(settings)
    _install_uvloop()
    app = create_app(settings)
    app.on_startup.append(_freeze_after_startup)  # after every cleanup context started
    logger.info("Skill Share node starting on http://{}:{} ({})", settings.host, settings.port,
                settings.env)
    web.run_app(
        app, host=settings.host, port=settings.port, print=None,
        shutdown_timeout=settings.shutdown_timeout, access_log=None,
        handle_signals=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skillshare", description="Skill Share server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run one node")
    seed = commands.add_parser("seed", help="fill the database with demo data")
    seed.add_argument("--users", type=int, default=50)
    seed.add_argument("--seed", type=int, default=42, help="random seed")
    seed.add_argument("--tokens", type=Path, default=None, metavar="FILE",
                      help="also sign every demo account in (load tests): one JSON line "
                           "per person with an access token, written to FILE (0600)")
    admin = commands.add_parser("admin", help="grant or revoke the admin role")
    admin.add_argument("action", choices=["grant", "revoke"])
    admin.add_argument("email")
    backup = commands.add_parser("backup", help="write one consistent archive of the database")
    backup.add_argument("--out", required=True, type=Path, help="archive file to write")
    restore = commands.add_parser("restore", help="load an archive into an empty database")
    restore.add_argument("archive", type=Path)
    restore.add_argument("--force", action="store_true",
                         help="drop the database's data and replace it with the archive's")
    rotate = commands.add_parser(
        "rotate-data-key",
        help="re-encrypt the fields encrypted at rest under the newest SKILLSHARE_DATA_KEY")
    rotate.add_argument("--batch-size", type=int, default=ROTATION_BATCH)
    args = parser.parse_args(argv)
    # Everything this process creates (data dir, embedded database files,
    # outbox mails, keys) is for its own user only.
    os.umask(PRIVATE_UMASK)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=settings.production)
    try:
        return _run(args, settings)
    except (EmbeddedDatabaseUnavailable, IndexBuildFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PyMongoError as exc:
        if args.command not in ("backup", "restore"):
            raise
        print(f"error: database: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:MAX_ERROR_CHARS] + ("…" if len(text) > MAX_ERROR_CHARS else "")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        serve(settings)
        return 0
    if args.command == "seed":
        from .seed import run_seed

        asyncio.run(run_seed(settings, users=args.users, random_seed=args.seed,
                             tokens_file=args.tokens))
        return 0
    if args.command == "admin":
        from .admin import run_admin

        ok = asyncio.run(run_admin(settings, action=args.action, email=args.email))
        return 0 if ok else 1
    if args.command == "backup":
        from .backup.commands import run_backup

        print(asyncio.run(run_backup(settings, out=args.out)))
        return 0
    if args.command == "restore":
        from .backup.commands import run_restore

        print(asyncio.run(run_restore(settings, archive=args.archive, force=args.force)))
        return 0
    if args.command == "rotate-data-key":
        from .rotate_data_key import run_rotate_data_key

        report = asyncio.run(run_rotate_data_key(settings, batch_size=args.batch_size))
        return 0 if not report.failed and not report.raced else 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
