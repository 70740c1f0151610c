"""``OpenPairs``: the per-node memory of pairs found with no block between
them (typing indicators), against consent changes and its lifetime."""

from __future__ import annotations

from server.consent.open_pairs import OpenPairs


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pair_found_open_is_trusted_until_a_change_about_either_person() -> None:
    pairs = OpenPairs(timer=Timer())
    pairs.remember_open("ada", "bob", pairs.version())
    assert pairs.is_open("bob", "ada")
    pairs.changed(["carol"])
    assert pairs.is_open("ada", "bob")
    pairs.changed(["bob"])
    assert not pairs.is_open("ada", "bob")


def test_a_read_begun_before_a_change_is_not_stored() -> None:
    pairs = OpenPairs(timer=Timer())
    version = pairs.version()  # the database read begins
    pairs.changed(["ada"])  # a block lands meanwhile
    pairs.remember_open("ada", "bob", version)
    assert not pairs.is_open("ada", "bob")
    pairs.remember_open("ada", "bob", pairs.version())  # a read begun after it
    assert pairs.is_open("ada", "bob")


def test_a_pair_is_forgotten_after_its_lifetime_and_on_forget_all() -> None:
    timer = Timer()
    pairs = OpenPairs(timer=timer, ttl=10)
    pairs.remember_open("ada", "bob", pairs.version())
    timer.now = 10.5
    assert not pairs.is_open("ada", "bob")
    pairs.remember_open("ada", "bob", pairs.version())
    pairs.forget_all()
    assert not pairs.is_open("ada", "bob")


def test_too_many_changes_in_one_lifetime_forget_every_pair() -> None:
    pairs = OpenPairs(timer=Timer(), max_changes=3)
    pairs.remember_open("ada", "bob", pairs.version())
    pairs.changed(["u1", "u2", "u3"])
    assert pairs.is_open("ada", "bob")
    pairs.changed(["u4"])  # the ledger is full: it cannot keep u4's change
    assert not pairs.is_open("ada", "bob")


def test_one_change_of_more_people_than_the_ledger_holds_forgets_every_pair() -> None:
    pairs = OpenPairs(timer=Timer(), max_changes=3)
    pairs.remember_open("ada", "bob", pairs.version())
    pairs.changed(["ada", "u2", "u3", "u4"])
    assert not pairs.is_open("ada", "bob")
