"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): the share
of samples in named areas (inclusive) and the top functions by own time.

    py-spy record --pid <node> -d 15 -r 200 --format raw -o prof.txt --nonblocking
    python loadtests/pyspy_summary.py prof.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

AREAS = {
    "permessage-deflate (zlib)": ("compression_utils", "zlib", "_send_compressed"),
    "engine.io per-socket writer (queue, wait_for, ws.send)": (
        "writer (engineio/async_socket.py", "poll (engineio/async_socket.py", "send (engineio/async_drivers"),
    "socketio manager emit (per-recipient tasks)": ("emit (socketio/async_manager.py",),
    "fast path (fanout.py)": ("server/realtime/fanout.py",),
    "asyncio event loop internals": ("_run_once (asyncio", "base_events.py"),
    "database driver (pymongo)": ("pymongo",),
    "websocket reads (aiohttp reader)": ("reader_c.py", "reader_py.py", "receive (aiohttp/web_ws.py"),
}


def main(path: str) -> None:
    total = 0
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        for area, needles in AREAS.items():
            if any(needle in stack for needle in needles):
                areas[area] += n
        own[stack.split(";")[-1]] += n
    print(f"{total} samples")
    for area, n in areas.most_common():
        print(f"{100 * n / total:5.1f}%  {area}")
    print("top own time:")
    for frame, n in own.most_common(12):
        print(f"{100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main(sys.argv[1])
