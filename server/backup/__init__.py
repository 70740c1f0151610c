"""Backups: ``skillshare backup`` / ``restore`` and the scheduled backups of
a node on the embedded database (docs/operations.md).

archive.py   the archive file: frames, optional AES-256-GCM sealing
snapshot.py  dump every collection as of one moment; verify; restore
schedule.py  the node's periodic backups, pruning and metrics
commands.py  the CLI commands over the above"""
