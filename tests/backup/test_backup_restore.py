"""``skillshare backup`` and ``restore`` as real processes, with real nodes:
a restored data dir works (sign-in, listings, room history, the next seq);
a backup taken while people chat is one consistent moment; damaged, forged,
wrongly keyed archives and non-empty databases are refused in one line;
a running embedded node takes scheduled backups and prunes them."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp
import bson
import pytest

from server.backup.snapshot import _Scan, verify_archive
from tests.support.realtime import SocketUser, http_json, new_client_id, open_direct, register_user
from tests.support.services import ROOT, DatabaseProcess, NodeProcess

LOW_COST = {"SKILLSHARE_PASSWORD_HASH_TIME_COST": "1", "SKILLSHARE_PASSWORD_HASH_MEMORY_KIB": "1024",
            "SKILLSHARE_RATE_LIMITS": "off", "SKILLSHARE_LOG_LEVEL": "INFO"}
BACKUP_KEY = "backup passphrase for the tests"
LISTING = {"title": "Sourdough baking", "description": "Starter, folds, oven spring.",
           "category": "cooking", "tags": ["bread"], "level": "beginner", "mode": "online"}
MESSAGES_BEFORE_BACKUP = 3
SENDERS = 4  # clients sending while the backups run
BACKUPS_DURING_CHAT = 2
CHAT_DEADLINE_S = 120


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLSHARE_")}
    return {**env, **LOW_COST, "SKILLSHARE_DATA_DIR": str(data_dir),
            **{f"SKILLSHARE_{name}": value for name, value in extra.items()}}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def _refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """A refusal: non-zero exit, one error line (last on stderr, after the
    INFO log lines), no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert line.startswith("error: ") and result.stderr.rstrip().endswith(line), result.stderr
    for word in words:
        assert word in line, line
    return line


def _documents(archive: Path, collection: str, *, key: str | None = None) -> list[dict]:
    return [bson.decode(raw) for name, docs in _Scan(archive, key=key).batches()
            if name == collection for raw in docs]


def _messages_by_room(archive: Path, *, key: str | None = None) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for doc in _documents(archive, "messages", key=key):
        seqs[doc["room_id"]].append(doc["seq"])
    return seqs


async def _send(user: SocketUser, room_id: str, body: str) -> dict:
    ack = await user.call("message:send", {"room_id": room_id, "client_id": new_client_id(),
                                           "body": body})
    assert ack["ok"], ack
    return ack["message"]


async def _chat_on_node(url: str) -> dict:
    """alice and bob, a listing, a direct room with a few messages."""
    alice = await register_user(url, "alice")
    bob = await register_user(url, "bob")
    status, listing = await http_json("POST", f"{url}/api/v1/skills",
                                      token=alice["access_token"], json=LISTING)
    assert status == 201, listing
    room = await open_direct(url, alice["access_token"], bob["id"])
    await open_direct(url, bob["access_token"], alice["id"])
    sock = await SocketUser(url, alice["access_token"]).connect()
    try:
        for n in range(MESSAGES_BEFORE_BACKUP):
            await _send(sock, room["id"], f"message {n + 1}")
    finally:
        await sock.close()
    return {"alice": alice, "bob": bob, "listing": listing, "room": room}


def _key_files(source: Path, target: Path) -> None:
    """What the operator keeps next to the archive: the data dir's key files."""
    target.mkdir(mode=0o700, parents=True)
    for path in source.iterdir():
        if path.is_file() and (path.name.endswith("key") or path.name.endswith(".key")):
            shutil.copy2(path, target / path.name)


async def test_backup_wipe_restore_then_everything_works(tmp_path):
    first = tmp_path / "var"
    node = NodeProcess(_env(first), log_path=tmp_path / "node1.log")
    node.start()
    try:
        world = await _chat_on_node(node.url)
    finally:
        assert node.terminate() == 0, node.log()

    archive = tmp_path / "backups" / "full.ssbak"
    archive.parent.mkdir()
    made = _cli(_env(first, BACKUP_KEY=BACKUP_KEY), "backup", "--out", str(archive))
    assert made.returncode == 0, made.stderr
    assert "backup written" in made.stdout and "; encrypted)" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not [p for p in archive.parent.iterdir() if p != archive]  # no temporary left

    # The disk is lost: a fresh data dir holding only the kept key files.
    second = tmp_path / "restored"
    _key_files(first, second)
    shutil.rmtree(first)
    restored = _cli(_env(second, BACKUP_KEY=BACKUP_KEY), "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout

    node = NodeProcess(_env(second), log_path=tmp_path / "node2.log")
    node.start()
    try:
        url, alice, room_id = node.url, world["alice"], world["room"]["id"]
        status, login = await http_json("POST", f"{url}/api/v1/auth/login", json={
            "email": alice["email"], "password": alice["password"]})
        assert status == 200, login
        token = login["access_token"]
        status, listings = await http_json("GET", f"{url}/api/v1/skills?owner={alice['id']}",
                                           token=token)
        assert status == 200 and [x["id"] for x in listings["items"]] == [world["listing"]["id"]]
        status, history = await http_json("GET", f"{url}/api/v1/rooms/{room_id}/messages",
                                          token=token)
        assert status == 200, history
        assert sorted(m["seq"] for m in history["items"]) == list(
            range(1, MESSAGES_BEFORE_BACKUP + 1))
        assert {m["body"] for m in history["items"]} == {
            f"message {n + 1}" for n in range(MESSAGES_BEFORE_BACKUP)}
        # A token issued before the backup still verifies: the key file was kept.
        status, _ = await http_json("GET", f"{url}/api/v1/users/me",
                                    token=world["bob"]["access_token"])
        assert status == 200
        sock = await SocketUser(url, token).connect()
        try:
            joined = await sock.call("room:join", {"room_id": room_id})
            assert joined["ok"] and joined["last_seq"] == MESSAGES_BEFORE_BACKUP, joined
            message = await _send(sock, room_id, "after the restore")
            assert message["seq"] == MESSAGES_BEFORE_BACKUP + 1
        finally:
            await sock.close()
    finally:
        assert node.terminate() == 0, node.log()
    assert "Traceback" not in node.log()


async def _keep_sending(url: str, room_id: str, user: dict, stop: asyncio.Event) -> int:
    sock = await SocketUser(url, user["access_token"]).connect()
    sent = 0
    try:
        while not stop.is_set():
            message = await _send(sock, room_id, f"{user['id']} #{sent}")
            # A second collection written after the first: a dump that is not
            # one moment sees read markers ahead of the messages it copied.
            read = await sock.call("message:read", {"room_id": room_id, "seq": message["seq"]})
            assert read["ok"], read
            sent += 1
    finally:
        await sock.close()
    return sent


async def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(_cli, env, *args)


async def test_backup_while_people_chat_is_one_consistent_moment(tmp_path):
    database = DatabaseProcess(tmp_path / "db")
    database.start()
    db_name = f"chat_{uuid.uuid4().hex[:8]}"
    env = _env(tmp_path / "node", MONGO_URL=database.url, MONGO_DB=db_name)
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    try:
        node.start()
        people = [await register_user(node.url, f"p{i}") for i in range(SENDERS)]
        rooms = []
        for a, b in zip(people[::2], people[1::2], strict=True):
            rooms.append((await open_direct(node.url, a["access_token"], b["id"]))["id"])
            await open_direct(node.url, b["access_token"], a["id"])
        stop = asyncio.Event()
        senders = [asyncio.create_task(_keep_sending(node.url, rooms[i // 2], person, stop))
                   for i, person in enumerate(people)]
        archives = []
        try:
            for n in range(BACKUPS_DURING_CHAT):
                archive = tmp_path / f"during-{n}.ssbak"
                made = await _run_cli(env, "backup", "--out", str(archive))
                assert made.returncode == 0, made.stderr
                archives.append(archive)
        finally:
            stop.set()
            sent = await asyncio.wait_for(asyncio.gather(*senders), CHAT_DEADLINE_S)
        assert all(sent), sent

        for archive in archives:
            manifest = verify_archive(archive, key=None)
            assert manifest["source"].startswith("mongodb://127.0.0.1")
            by_room = _messages_by_room(archive)
            assert set(by_room) <= set(rooms)
            for room_id, seqs in by_room.items():
                assert sorted(seqs) == list(range(1, len(seqs) + 1)), (archive.name, room_id)
            for marker in _documents(archive, "read_markers"):
                assert marker["seq"] <= len(by_room[marker["room_id"]]), (archive.name, marker)
        assert any(_messages_by_room(archives[-1]).values())

        # The same archive restores into another database on the shared server.
        restored_env = {**env, "SKILLSHARE_MONGO_DB": f"{db_name}_restored"}
        restored = await _run_cli(restored_env, "restore", str(archives[-1]))
        assert restored.returncode == 0, restored.stderr
        again = await _run_cli(restored_env, "restore", str(archives[-1]))
        _refused(again, "not empty", "--force")
        forced = await _run_cli(restored_env, "restore", "--force", str(archives[0]))
        assert forced.returncode == 0, forced.stderr
        check = tmp_path / "check.ssbak"
        assert (await _run_cli(restored_env, "backup", "--out", str(check))).returncode == 0
        assert _messages_by_room(check) == _messages_by_room(archives[0])
    finally:
        node.terminate()
        database.stop()


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small database backed up twice: plain and encrypted."""
    from server.storage.database import open_database

    workdir = tmp_path_factory.mktemp("archives")
    data_dir = workdir / "var"

    async def fill() -> None:
        async with open_database(mongo_url=None, db_name="skillshare", data_dir=data_dir) as db:
            await db["users"].insert_many([{"_id": f"u{i}", "name": f"user {i}"}
                                           for i in range(50)])
            await db["messages"].insert_many([{"_id": f"r1:{i:010d}", "room_id": "r1", "seq": i,
                                               "sender_id": "u1", "client_id": f"c{i}"}
                                              for i in range(1, 30)])

    asyncio.run(fill())
    plain, sealed = workdir / "plain.ssbak", workdir / "sealed.ssbak"
    assert _cli(_env(data_dir), "backup", "--out", str(plain)).returncode == 0
    made = _cli(_env(data_dir, BACKUP_KEY=BACKUP_KEY), "backup", "--out", str(sealed))
    assert made.returncode == 0, made.stderr
    return {"plain": plain, "sealed": sealed, "data_dir": data_dir}


def _damaged(source: Path, target: Path, *, cut: int | None = None,
             flip_at: float | None = None) -> Path:
    data = bytearray(source.read_bytes())
    if cut is not None:
        data = data[:cut]
    if flip_at is not None:
        data[int(len(data) * flip_at)] ^= 0x01
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("kind", ["plain", "sealed"])
def test_truncated_and_tampered_archives_are_refused_in_one_line(archives, tmp_path, kind):
    env = _env(tmp_path / "var", **({"BACKUP_KEY": BACKUP_KEY} if kind == "sealed" else {}))
    source = archives[kind]
    size = source.stat().st_size
    cut_short = _damaged(source, tmp_path / "short.ssbak", cut=size - 7)
    _refused(_cli(env, "restore", str(cut_short)), "truncated")
    cut_half = _damaged(source, tmp_path / "half.ssbak", cut=size // 2)
    _refused(_cli(env, "restore", str(cut_half)), "truncated")
    tampered = _damaged(source, tmp_path / "tampered.ssbak", flip_at=0.6)
    line = _refused(_cli(env, "restore", str(tampered)))
    assert "tampered" in line or "damaged" in line, line
    if kind == "plain":
        # An edit that keeps the manifest valid JSON (an index renamed) is
        # caught too: every frame, the manifest included, has its checksum.
        data = source.read_bytes()
        at = data.rindex(b"tokens_1")
        edited = tmp_path / "edited.ssbak"
        edited.write_bytes(data[:at] + b"tokens_2" + data[at + len(b"tokens_1"):])
        line = _refused(_cli(env, "restore", str(edited)))
        assert "damaged or has been tampered with" in line, line
    # Nothing was loaded: the good archive still restores without --force.
    good = _cli(env, "restore", str(source))
    assert good.returncode == 0, good.stderr


def test_wrong_key_missing_key_and_other_versions_are_refused(archives, tmp_path):
    env = _env(tmp_path / "var")
    sealed = archives["sealed"]
    _refused(_cli(env, "restore", str(sealed)), "encrypted", "SKILLSHARE_BACKUP_KEY")
    wrong = {**env, "SKILLSHARE_BACKUP_KEY": "not the backup passphrase"}
    _refused(_cli(wrong, "restore", str(sealed)), "wrong SKILLSHARE_BACKUP_KEY")
    keyed = {**env, "SKILLSHARE_BACKUP_KEY": BACKUP_KEY}
    _refused(_cli(keyed, "restore", str(archives["plain"])), "is not encrypted")
    future = bytearray(archives["plain"].read_bytes())
    future[9] = 9  # format version (u16 after the 8-byte magic): 9
    (tmp_path / "future.ssbak").write_bytes(bytes(future))
    _refused(_cli(env, "restore", str(tmp_path / "future.ssbak")), "format version 9")
    (tmp_path / "notes.txt").write_text("hello")
    _refused(_cli(env, "restore", str(tmp_path / "notes.txt")), "not a Skill Share backup")
    _refused(_cli(env, "restore", str(tmp_path / "missing.ssbak")), "cannot read")


def test_restore_into_a_database_with_data_needs_force(archives, tmp_path):
    data_dir = archives["data_dir"]  # the database the archives came from
    env = _env(data_dir)
    _refused(_cli(env, "restore", str(archives["plain"])), "not empty", "--force")
    forced = _cli(env, "restore", "--force", str(archives["plain"]))
    assert forced.returncode == 0, forced.stderr
    check = tmp_path / "check.ssbak"
    assert _cli(env, "backup", "--out", str(check)).returncode == 0
    counts = {c["name"]: c["documents"] for c in verify_archive(check, key=None)["collections"]}
    assert counts["users"] == 50 and counts["messages"] == 29


def test_bad_backup_settings_and_targets_are_refused_in_one_line(tmp_path):
    short = _cli(_env(tmp_path / "var", BACKUP_KEY="short"), "backup", "--out",
                 str(tmp_path / "x.ssbak"))
    assert short.returncode == 2 and short.stderr.count("\n") == 1, short.stderr
    assert "SKILLSHARE_BACKUP_KEY" in short.stderr
    nowhere = tmp_path / "no such folder" / "x.ssbak"
    _refused(_cli(_env(tmp_path / "var"), "backup", "--out", str(nowhere)), "cannot write")


def test_backup_of_an_embedded_database_in_use_is_refused_in_one_line(tmp_path):
    data_dir = tmp_path / "var"
    node = NodeProcess(_env(data_dir), log_path=tmp_path / "node.log")
    node.start()
    try:
        _refused(_cli(_env(data_dir), "backup", "--out", str(tmp_path / "x.ssbak")), "in use")
        _refused(_cli(_env(data_dir), "restore", str(tmp_path / "x.ssbak")))
    finally:
        node.terminate()


SCHEDULE_INTERVAL_S = "1"
SCHEDULE_KEEP = 2
SCHEDULED_WANTED = 3
SCHEDULE_DEADLINE_S = 60


async def _scheduled_successes(http: aiohttp.ClientSession, url: str) -> int:
    text = await (await http.get(f"{url}/metrics")).text()
    for line in text.splitlines():
        if line.startswith('skillshare_backups_total{outcome="success"}'):
            return int(float(line.split()[-1]))
    return 0


async def test_a_running_embedded_node_takes_scheduled_backups_and_prunes_them(tmp_path):
    backups = tmp_path / "backups"
    env = _env(tmp_path / "var", BACKUP_DIR=str(backups), BACKUP_INTERVAL=SCHEDULE_INTERVAL_S,
               BACKUP_KEEP=str(SCHEDULE_KEEP), BACKUP_KEY=BACKUP_KEY)
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        user = await register_user(node.url, "scheduled")
        deadline = time.monotonic() + SCHEDULE_DEADLINE_S
        async with aiohttp.ClientSession() as http:
            while await _scheduled_successes(http, node.url) < SCHEDULED_WANTED:
                assert time.monotonic() < deadline, node.log()
                await asyncio.sleep(0.2)
            metrics = await (await http.get(f"{node.url}/metrics")).text()
        assert "skillshare_backup_last_success_timestamp_seconds" in metrics
        kept = sorted(backups.glob("*.ssbak"))
        assert len(kept) == SCHEDULE_KEEP, kept
        for path in kept:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        newest = kept[-1]
    finally:
        assert node.terminate() == 0, node.log()
    assert "Traceback" not in node.log()
    counts = {c["name"]: c["documents"]
              for c in verify_archive(newest, key=BACKUP_KEY)["collections"]}
    assert counts["users"] == 1
    # The scheduled archive restores like any other.
    restored = _cli(_env(tmp_path / "fresh", BACKUP_KEY=BACKUP_KEY), "restore", str(newest))
    assert restored.returncode == 0, restored.stderr
    assert user["id"]


async def test_a_failing_scheduled_backup_is_counted_and_the_node_keeps_serving(tmp_path):
    not_a_folder = tmp_path / "backups"
    not_a_folder.write_text("a file where the folder should be")
    env = _env(tmp_path / "var", BACKUP_DIR=str(not_a_folder),
               BACKUP_INTERVAL=SCHEDULE_INTERVAL_S)
    node = NodeProcess(env, log_path=tmp_path / "node.log")
    node.start()
    try:
        deadline = time.monotonic() + SCHEDULE_DEADLINE_S
        async with aiohttp.ClientSession() as http:
            while 'skillshare_backups_total{outcome="failure"} 2.0' not in (
                    await (await http.get(f"{node.url}/metrics")).text()):
                assert time.monotonic() < deadline, node.log()
                await asyncio.sleep(0.2)
        assert (await register_user(node.url, "still-serving"))["id"]
    finally:
        assert node.terminate() == 0, node.log()
    assert "scheduled backup into" in node.log() and "cannot write" in node.log()
    assert "Traceback" not in node.log()
