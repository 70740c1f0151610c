"""How scripts/test.sh's two xdist workers share the suite
(tests/support/scheduling.py), driven the way xdist's controller drives it:
two workers report the same collection, the scheduler hands out units, the
workers report tests done. The workers here only record what they are sent."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.scheduling import CHROMIUM_FILES, SuiteScheduling, selects_slow

COLLECTION = [
    "tests/auth/test_tokens.py::test_a",
    "tests/auth/test_tokens.py::test_b",
    "tests/auth/test_tokens.py::test_c",
    "tests/e2e/test_browser.py::test_app",
    "tests/e2e/test_browser.py::test_layout",
    "tests/e2e/test_chaos.py::test_soak",
    "tests/e2e/test_js_sdk.py::test_suite",
    "tests/e2e/test_realtime_cluster.py::test_x",
    "tests/e2e/test_realtime_cluster.py::test_y",
    "tests/e2e/test_turn.py::test_coturn_in_chromium",
    "tests/handlers/test_skills.py::test_one",
    "tests/test_cli.py::test_two",
]


class Worker:
    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[str] = []
        self.shutting_down = False

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(COLLECTION[i] for i in indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def _config(markexpr: str) -> SimpleNamespace:
    option = SimpleNamespace(markexpr=markexpr, loadscopereorder=True)
    return SimpleNamespace(option=option, getvalue=lambda name: {"tx": ["2*popen"]}[name])


def _run(markexpr: str = "not slow") -> tuple[Worker, Worker, list[str]]:
    """Both workers run their tests one by one, the first worker's first; the
    order in which tests were started, overall."""
    sched = SuiteScheduling(_config(markexpr))
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        sched.add_node(worker)
    for worker in workers:
        sched.add_node_collection(worker, list(COLLECTION))
    sched.schedule()
    started: list[str] = []
    done = {worker: 0 for worker in workers}
    while not sched.tests_finished:
        progressed = False
        for worker in workers:
            if done[worker] < len(worker.sent):
                started.append(worker.sent[done[worker]])
                sched.mark_test_complete(worker, COLLECTION.index(worker.sent[done[worker]]))
                done[worker] += 1
                progressed = True
        assert progressed, "tests left that no worker was sent"
    return workers[0], workers[1], started


def test_each_test_runs_once_and_files_stay_on_one_worker() -> None:
    first, second, _ = _run()
    assert sorted(first.sent + second.sent) == sorted(COLLECTION)
    on_first = {nodeid.split("::")[0] for nodeid in first.sent}
    on_second = {nodeid.split("::")[0] for nodeid in second.sent}
    assert on_first.isdisjoint(on_second)


def _chromium(nodeid: str) -> bool:
    return nodeid.split("::")[0] in CHROMIUM_FILES


def test_the_chromium_files_share_one_worker_and_are_handed_out_last() -> None:
    first, second, started = _run()
    chromium = [n for n in COLLECTION if _chromium(n)]
    assert set(chromium) <= set(first.sent) or set(chromium) <= set(second.sent)
    holder = first if set(chromium) <= set(first.sent) else second
    assert all(_chromium(n) for n in holder.sent[-len(chromium):]), holder.sent
    # every other file was handed out before the first Chromium test started
    assert started.index(next(n for n in started if _chromium(n))) >= len(COLLECTION) - len(
        chromium) - 1, started


def test_e2e_files_are_handed_out_before_the_rest() -> None:
    first, second, _ = _run()
    for worker in (first, second):
        kinds = [0 if n.startswith("tests/e2e/") and not _chromium(n) else 1
                 for n in worker.sent if not _chromium(n)]
        assert kinds == sorted(kinds), worker.sent


def test_a_slow_run_is_one_unit_on_one_worker() -> None:
    first, second, _ = _run("slow")
    assert sorted(first.sent + second.sent) == sorted(COLLECTION)
    assert [] in (first.sent, second.sent)
    assert selects_slow("slow") and selects_slow("slow and not soak")
    assert not selects_slow("not slow") and not selects_slow("")
