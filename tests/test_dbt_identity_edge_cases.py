"""Identity stitching at its corners, worked out by hand (rules: dbt/README.md, "Identity
stitching", and the issue's text). Each test lands its rounds into two warehouses with the same
raw data, builds one incrementally after every round and the other with --full-refresh at the
end, checks the hand-worked outcome on both and that they are equal.

Customers 1 Ann, 2 Ben, 3 Cat, 4 Dan, 5 Eve (users snapshot, 2026-06-01 08:00). Times on
2026-06-01 unless said.

test_anonymous_corners (one error message per anonymous event, named after it, page p.html):
- dev-tie, round 1: Ben logs in 09:00 (tb), Ann 10:00 (ta); T1 at exactly 10:00 -> Ann (latest
  login at or before). Cat (tc1) and Eve (te2) log in at the same instant 11:00; T2 at 11:00 ->
  Eve (te2 > tc1: the later). Round 2: Ben logs in at 11:00 again (tz9 > te2, a late login at
  the same instant) -> T2 moves to Ben.
- dev-late, round 1: L1 09:00; Ben logs in 10:00; L2 10:30 -> both Ben. Round 2: Ann logs in at
  08:00 (late, older than everything) -> L1 Ann (latest login <= 09:00), L2 Ben. Round 3: Cat
  logs in 10:15 (late) -> L2 Cat; L3 12:00 -> Cat.
- dev-three, round 1: R1 08:00 (unattributed). Round 2: Ann logs in 09:00 -> R1 Ann
  (retroactively); R2 09:30 Ann. Round 3: Ben logs in 10:00; R3 10:30 -> Ben; R0 07:00 lands
  late -> first login, Ann; R1 landed again (same event_id, 12:00, other error, and on
  dev-other): dropped. Round 4: Cat logs in 11:00; R4 10:45 (out of order) -> Ben; R5 11:05 ->
  Cat.
- dev-dan: Dan logs in 09:00, D1 09:30 -> Dan; round 2 Dan's users document is deleted.
- dev-none: N1 12:00 -> unattributed.

By hand: recent errors Ann T1 10:00, L1 09:00, R0 07:00, R1 08:00, R2 09:30; Ben T2 11:00, R3
10:30, R4 10:45; Cat L2 10:30, L3 12:00, R5 11:05; Eve and Dan none. Website Visit: Ann 10:00,
Ben 11:00, Cat 12:00, Eve 11:00.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb

from tests.dbt_fixtures.dbt_invoke import run_dbt
from tests.dbt_fixtures.raw_builder import RawLanding, object_id, utc
from tests.test_dbt_incremental import assert_same_relations

LOGIN = "login_success.html"
NAMES = {1: "Ann", 2: "Ben", 3: "Cat", 4: "Dan", 5: "Eve"}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def t(hhmm: str, day: str = "2026-06-01") -> dt.datetime:
    return utc(f"{day}T{hhmm}:00")


def landing(tmp_path: Path) -> tuple[RawLanding, Path, Path]:
    inc = tmp_path / "incremental" / "warehouse.duckdb"
    full = tmp_path / "full" / "warehouse.duckdb"
    inc.parent.mkdir()
    full.parent.mkdir()
    return RawLanding([inc, full]), inc, full


def build(inc: Path, tmp_path: Path) -> None:
    run_dbt(inc, "run", work_dir=tmp_path / "dbt-inc")


def full_refresh(full: Path, tmp_path: Path) -> None:
    run_dbt(full, "run", "--full-refresh", work_dir=tmp_path / "dbt-full")


def rows(warehouse: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(query).fetchall()


def snapshot_users(raw: RawLanding, emails: dict[int, str] | None = None) -> None:
    raw.now = utc("2026-06-01T08:00:00")
    for number, name in NAMES.items():
        email = (emails or {}).get(number, f"{name.lower()}@example.com")
        raw.user("snapshot", number, number, first_name=name, email=email)


def anon(raw, event_id, when, device, error=True):
    raw.weblog(
        event_id, None, when, page="p.html", error_message=event_id if error else None,
        anonymous_id=device,
    )  # fmt: skip


def login(raw, event_id, customer, when, device):
    raw.weblog(event_id, customer, when, page=LOGIN, anonymous_id=device)


def test_anonymous_corners(tmp_path: Path) -> None:
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw)
    # round 1
    login(raw, "tb", 2, t("09:00"), "dev-tie")
    login(raw, "ta", 1, t("10:00"), "dev-tie")
    anon(raw, "T1", t("10:00"), "dev-tie")
    login(raw, "tc1", 3, t("11:00"), "dev-tie")
    login(raw, "te2", 5, t("11:00"), "dev-tie")
    anon(raw, "T2", t("11:00"), "dev-tie")
    anon(raw, "L1", t("09:00"), "dev-late")
    login(raw, "lb", 2, t("10:00"), "dev-late")
    anon(raw, "L2", t("10:30"), "dev-late")
    anon(raw, "R1", t("08:00"), "dev-three")
    login(raw, "dd", 4, t("09:00"), "dev-dan")
    anon(raw, "D1", t("09:30"), "dev-dan")
    anon(raw, "N1", t("12:00"), "dev-none")
    raw.land()
    build(inc, tmp_path)
    assert rows(inc, "select * from intermediate.int_unattributed_activity") == [
        ("anonymous_weblog_events", 2, 2)
    ]
    assert rows(
        inc, "select error_message from marts.customer_recent_errors where customer_id = 5"
    ) == [("T2",)]
    # round 2
    raw.now = utc("2026-06-02T08:00:00")
    login(raw, "tz9", 2, t("11:00"), "dev-tie")
    login(raw, "la", 1, t("08:00"), "dev-late")
    login(raw, "ra", 1, t("09:00"), "dev-three")
    anon(raw, "R2", t("09:30"), "dev-three")
    raw.user("delete", 4, 4)
    raw.land()
    build(inc, tmp_path)
    # round 3
    raw.now = utc("2026-06-03T08:00:00")
    login(raw, "lc", 3, t("10:15"), "dev-late")
    anon(raw, "L3", t("12:00"), "dev-late")
    login(raw, "rb", 2, t("10:00"), "dev-three")
    anon(raw, "R3", t("10:30"), "dev-three")
    anon(raw, "R0", t("07:00"), "dev-three")
    raw.weblog("R1", None, t("12:00"), page="x.html", error_message="dup", anonymous_id="dev-three")
    raw.weblog("R1", None, t("12:00"), page="x.html", error_message="dup", anonymous_id="dev-other")
    raw.land()
    build(inc, tmp_path)
    # round 4
    raw.now = utc("2026-06-04T08:00:00")
    login(raw, "rc", 3, t("11:00"), "dev-three")
    anon(raw, "R4", t("10:45"), "dev-three")
    anon(raw, "R5", t("11:05"), "dev-three")
    raw.land()
    build(inc, tmp_path)
    full_refresh(full, tmp_path)

    errors = [
        (1, "L1", "09:00"), (1, "R0", "07:00"), (1, "R1", "08:00"), (1, "R2", "09:30"),
        (1, "T1", "10:00"),
        (2, "R3", "10:30"), (2, "R4", "10:45"), (2, "T2", "11:00"),
        (3, "L2", "10:30"), (3, "L3", "12:00"), (3, "R5", "11:05"),
    ]  # fmt: skip
    visits = [(1, "10:00"), (2, "11:00"), (3, "12:00"), (5, "11:00")]
    identities = [
        (1, "dev-late", "08:00", "09:00"), (1, "dev-three", "07:00", "09:30"),
        (1, "dev-tie", "10:00", "10:00"),
        (2, "dev-late", "10:00", "10:00"), (2, "dev-three", "10:00", "10:45"),
        (2, "dev-tie", "09:00", "11:00"),
        (3, "dev-late", "10:15", "12:00"), (3, "dev-three", "11:00", "11:05"),
        (3, "dev-tie", "11:00", "11:00"),
        (5, "dev-tie", "11:00", "11:00"),
    ]  # fmt: skip
    for warehouse in (inc, full):
        assert rows(
            warehouse,
            "select customer_id, error_message, page, last_at, occurrences"
            " from marts.customer_recent_errors order by all",
        ) == [(c, m, "p.html", at(f"2026-06-01T{h}:00"), 1) for c, m, h in errors]
        assert rows(
            warehouse,
            "select customer_id, last_at from marts.customer_activity"
            " where event = 'Website Visit' order by all",
        ) == [(c, at(f"2026-06-01T{h}:00")) for c, h in visits]
        assert rows(
            warehouse,
            "select customer_id, identifier, first_seen_at, last_seen_at"
            " from marts.customer_identities where identifier_type = 'anonymous_id' order by all",
        ) == [
            (c, d, at(f"2026-06-01T{a}:00"), at(f"2026-06-01T{b}:00")) for c, d, a, b in identities
        ]
        assert rows(warehouse, "select * from intermediate.int_unattributed_activity") == [
            ("anonymous_weblog_events", 1, 1)
        ]
        assert rows(
            warehouse, "select count(*) from marts.customer_360_base where customer_id = 4"
        ) == [(0,)]
    assert_same_relations(inc, full)


def instore_stats(warehouse: Path) -> list[tuple]:
    return rows(
        warehouse,
        "select customer_id, instore_orders, instore_amount_spent from marts.customer_360_base"
        " order by customer_id",
    )


def guest_owner(warehouse: Path) -> list[tuple]:
    return rows(
        warehouse,
        "select order_id, customer_id, attribution from intermediate.int_guest_order_owners"
        " order by order_id",
    )


def test_email_trimmed_of_any_surrounding_whitespace(tmp_path: Path) -> None:
    """The issue: an email matches a customer's users.email "trimmed and case-insensitive". A
    till sale typed '\\tAnn@Example.com\\n' (a tab before, a newline after: surrounding
    whitespace) is Ann's 12.00; Ben's users email ' ben@example.com\\t' matches a sale typed
    'BEN@example.com'. Expected: Ann 1 order 12.00, Ben 1 order 7.00; nothing unmatched."""
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw, {2: " ben@example.com\t"})
    raw.order("Instore", "insert", 901, None, t("12:00"), [("Scarf", "A", 12, 1)],
              customer_email="\tAnn@Example.com\n")  # fmt: skip
    raw.order("Instore", "insert", 902, None, t("12:00"), [("Hat", "A", 7, 1)],
              customer_email="BEN@example.com")  # fmt: skip
    # Blank once trimmed: no identifier at all, so rejected (not an unmatched address "\t").
    raw.order("Instore", "insert", 903, None, t("12:00"), [("Hat", "A", 7, 1)],
              customer_email="\t\n")  # fmt: skip
    raw.email("m1", 1, t("09:00"), recipient_email="\tANN@example.com\r\n")
    raw.land()
    build(inc, tmp_path)
    full_refresh(full, tmp_path)
    for warehouse in (inc, full):
        stats = {c: (n, amount) for c, n, amount in instore_stats(warehouse)}
        assert stats[1] == (1, Decimal("12.00")) and stats[2] == (1, Decimal("7.00")), stats
        assert rows(
            warehouse,
            "select identifier, first_seen_at, last_seen_at from marts.customer_identities"
            " where customer_id = 1 and identifier_type = 'email'",
        ) == [("ann@example.com", at("2026-06-01T08:00:00"), at("2026-06-01T12:00:00"))]
        assert rows(warehouse, "select * from intermediate.int_unattributed_activity") == [
            ("anonymous_weblog_events", 0, 0)
        ]
        assert rows(warehouse, "select source, reason from staging.stg_rejected_records") == [
            ("instore_orders", "neither user_id nor customer_email")
        ]
    assert_same_relations(inc, full)


def test_a_new_customer_with_a_recycled_address_does_not_take_past_matches(
    tmp_path: Path,
) -> None:
    """Ann held ann@example.com when she bought as a guest on 06-02 (order 911, 12.00): Ann's.
    On 06-05 she changed to ann.new@example.com; on 06-10 a new customer (6, Fay) registers
    with ann@example.com. The issue: an email matches the customer's users.email, and a change
    moves future matches only; Fay did not exist on 06-02 and never held the address then.
    Expected: 911 stays Ann's (1 order, 12.00), Fay none; a guest sale with ann@ on 06-11 (912)
    is Fay's."""
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw)
    raw.order("Instore", "insert", 911, None, t("12:00", "2026-06-02"), [("Scarf", "A", 12, 1)],
              customer_email="ann@example.com")  # fmt: skip
    raw.land()
    build(inc, tmp_path)
    assert guest_owner(inc)[0][1:] == (1, "email")
    raw.now = utc("2026-06-05T08:00:00")
    raw.user("update", 1, 1, first_name="Ann", email="ann.new@example.com")
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-10T08:00:00")
    raw.user("insert", 6, 6, first_name="Fay", email="ann@example.com")
    raw.order("Instore", "insert", 912, None, t("12:00", "2026-06-11"), [("Hat", "A", 7, 1)],
              customer_email="ann@example.com")  # fmt: skip
    raw.land()
    build(inc, tmp_path)
    full_refresh(full, tmp_path)
    for warehouse in (inc, full):
        owners = {o: (c, a) for o, c, a in guest_owner(warehouse)}
        assert owners == {object_id(911): (1, "email"), object_id(912): (6, "email")}, owners
        stats = {c: (n, amount) for c, n, amount in instore_stats(warehouse)}
        assert stats[1] == (1, Decimal("12.00")) and stats[6] == (1, Decimal("7.00")), stats
    assert_same_relations(inc, full)


def test_a_later_registration_does_not_take_or_blur_sales_from_before_another_held_it(
    tmp_path: Path,
) -> None:
    """Guest sales older than the users snapshot (06-01 08:00) go to the snapshot's holder of
    their address (a document's first address also holds before it). Ann (ann@) changes to
    ann.new@ on 06-05; on 06-10 Fay registers with ann@ and Gus with ben@, which Ben still
    holds. A registration's address holds before it only back to when another customer last
    held it by a change: Fay's from 06-05 (Ann's change) to 06-10, Gus's not at all (Ben holds
    ben@ since 06-01 and still does). So:
    - 901 (ann@, 05-15, 12.00): Ann's (before this rule, Ann's and Fay's: ambiguous);
    - 902 (ben@, 05-15, 7.00): Ben's (was ambiguous with Gus);
    - 903 (ann@, 06-03, 5.00): Ann's (she held it then);
    - 904 (ann@, 06-07, 9.00): Fay's (nobody held it; she bought as a guest, then registered);
    - 905 (ben@, 06-11, 3.00): ambiguous (Ben and Gus both hold ben@ since 06-10).
    Ann 2 orders 17.00, Ben 1 order 7.00, Fay 1 order 9.00, Gus none; 1 ambiguous order."""
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw)
    for number, email, day, price in (
        (901, "ann@example.com", "2026-05-15", 12),
        (902, "ben@example.com", "2026-05-15", 7),
        (903, "ann@example.com", "2026-06-03", 5),
    ):
        raw.order("Instore", "insert", number, None, t("12:00", day), [("Scarf", "A", price, 1)],
                  customer_email=email)  # fmt: skip
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-05T08:00:00")
    raw.user("update", 1, 1, first_name="Ann", email="ann.new@example.com")
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-10T08:00:00")
    raw.user("insert", 6, 6, first_name="Fay", email="ann@example.com")
    raw.user("insert", 7, 7, first_name="Gus", email="ben@example.com")
    raw.order("Instore", "insert", 904, None, t("12:00", "2026-06-07"), [("Hat", "A", 9, 1)],
              customer_email="ann@example.com")  # fmt: skip
    raw.order("Instore", "insert", 905, None, t("12:00", "2026-06-11"), [("Hat", "A", 3, 1)],
              customer_email="ben@example.com")  # fmt: skip
    raw.land()
    build(inc, tmp_path)
    full_refresh(full, tmp_path)
    for warehouse in (inc, full):
        owners = {o: (c, a) for o, c, a in guest_owner(warehouse)}
        assert owners == {
            object_id(901): (1, "email"),
            object_id(902): (2, "email"),
            object_id(903): (1, "email"),
            object_id(904): (6, "email"),
            object_id(905): (None, "ambiguous_email"),
        }, owners
        stats = {c: (n, amount) for c, n, amount in instore_stats(warehouse)}
        assert stats[1] == (2, Decimal("17.00")) and stats[2] == (1, Decimal("7.00")), stats
        assert stats[6] == (1, Decimal("9.00")) and stats[7][0] == 0, stats
    assert_same_relations(inc, full)


def test_a_users_batch_with_a_lower_id_landing_after_an_order_batch(tmp_path: Path) -> None:
    """Batch ids come from one sequence; sources land side by side, so one source's ids
    increase in commit order but a users batch can commit (and be built) after an in-store
    batch with a higher id (extractors/warehouse.py: per-source order is what the watermarks
    need). Round 1: Ann, Ben; guest sale 921 by newbie@example.com (unmatched). Round 2 (in-store
    batch 20): guest sale 922 by ben@example.com -> Ben. Round 3 (users batch 10): a new
    customer 6 Nia registers with newbie@example.com -> 921 (her first address also holds
    before) is Nia's: 1 order, 12.00, as a full refresh says."""
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw)
    raw.order("Instore", "insert", 921, None, t("12:00"), [("Scarf", "A", 12, 1)],
              customer_email="newbie@example.com")  # fmt: skip
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-02T08:00:00")
    raw.next_batch_id = 20
    raw.order("Instore", "insert", 922, None, t("12:00", "2026-06-02"), [("Hat", "A", 7, 1)],
              customer_email="ben@example.com")  # fmt: skip
    assert raw.land() == [20]
    build(inc, tmp_path)
    published = customer_marks(inc)  # what a serving copy published now would record
    raw.now = utc("2026-06-03T08:00:00")
    raw.next_batch_id = 10
    raw.user("insert", 6, 6, first_name="Nia", email="newbie@example.com")
    assert raw.land() == [10]
    build(inc, tmp_path)
    # The serving copy publishes again the customers with a mark above the copy's. The order's
    # _batch_id (20, the greater of its batches) says nothing new here; its users part does (a
    # customer whose own document did not change, one who loses an order to a late users
    # change, has only that mark to say so).
    nia = customer_marks(inc, customer_id=6)
    assert nia["_guest_orders_batch_id"] <= published["_guest_orders_batch_id"], nia
    assert nia["_guest_orders_users_batch_id"] > published["_guest_orders_users_batch_id"], (
        nia,
        published,
    )
    full_refresh(full, tmp_path)
    for warehouse in (inc, full):
        stats = {c: (n, amount) for c, n, amount in instore_stats(warehouse)}
        assert stats[6] == (1, Decimal("12.00")), (warehouse, stats)
    assert_same_relations(inc, full)


def customer_marks(warehouse: Path, customer_id: int | None = None) -> dict[str, int]:
    """customer_360_base's batch marks: the greatest of each over every customer (what a serving
    copy published then records), or one customer's."""
    with duckdb.connect(str(warehouse)) as con:
        marks = [
            name
            for (name,) in con.execute(
                "select column_name from duckdb_columns() where table_name = 'customer_360_base'"
                " and column_name like '\\_%\\_batch\\_id' escape '\\'"
            ).fetchall()
        ]
        select = ", ".join(f"coalesce(max({m}), -1)" for m in marks)
        where = "" if customer_id is None else f" where customer_id = {customer_id}"
        values = con.execute(f"select {select} from marts.customer_360_base{where}").fetchone()
    return dict(zip(marks, values, strict=True))


def test_email_corners(tmp_path: Path) -> None:
    """Ben's users email ' BEN@Example.com '; Cat cat@ -> cat2@ (06-05 08:00) -> cat@ again
    (06-07 08:00). Guest sales (price = order's number): O1 ben@ 06-01 12:00 (1) -> Ben; O2 cat@
    06-04 (2) -> Cat; O3 cat@ 06-06 (4) -> unmatched; O4 cat@ at exactly 06-07 08:00 (8) -> Cat
    (an address holds from the change that set it); O5 cat2@ at exactly 06-07 08:00 (16) ->
    unmatched; O6 cat2@ 06-06 (32) -> Cat. Then O1 gains user_id 1 (Ann's by id), O2 is
    deleted, O6 is corrected to ann@ (Ann held it on 06-06) and O3 to ben@ (Ben's).
    By hand: Ann 2 orders 33, Ben 1 order 4, Cat 1 order 8; unmatched 1 (O5). Emails: Ann ann@
    06-01 08:00 .. 06-06 12:00; Ben ben@ 06-01 08:00 .. 06-06 12:00; Cat cat@ 06-01 08:00 ..
    06-07 08:00, cat2@ 06-05 08:00 .. 06-05 08:00."""
    raw, inc, full = landing(tmp_path)
    snapshot_users(raw, {2: " BEN@Example.com "})

    def sale(number, email, when, operation="insert", customer=None):
        raw.order("Instore", operation, number, customer, when,
                  [("Item", "A", number - 930, 1)], customer_email=email)  # fmt: skip

    sale(931, "ben@example.com", t("12:00"))
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-05T08:00:00")
    raw.user("update", 3, 3, first_name="Cat", email="cat2@example.com")
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-07T08:00:00")
    raw.user("update", 3, 3, first_name="Cat", email="cat@example.com")
    sale(932, "cat@example.com", t("12:00", "2026-06-04"))
    sale(934, "cat@example.com", t("12:00", "2026-06-06"))
    sale(938, "cat@example.com", t("08:00", "2026-06-07"))
    sale(946, "cat2@example.com", t("08:00", "2026-06-07"))
    sale(962, "cat2@example.com", t("12:00", "2026-06-06"))
    raw.land()
    build(inc, tmp_path)
    raw.now = utc("2026-06-08T08:00:00")
    sale(931, None, t("12:00"), "update", customer=1)
    raw.order("Instore", "delete", 932)
    sale(962, "ann@example.com", t("12:00", "2026-06-06"), "update")
    sale(934, "ben@example.com", t("12:00", "2026-06-06"), "update")
    raw.land()
    build(inc, tmp_path)
    full_refresh(full, tmp_path)
    for warehouse in (inc, full):
        stats = {c: (n, amount) for c, n, amount in instore_stats(warehouse)}
        assert (stats[1], stats[2], stats[3]) == (
            (2, Decimal(33)),
            (1, Decimal(4)),
            (1, Decimal(8)),
        ), stats
        assert rows(
            warehouse,
            "select customer_id, identifier, first_seen_at, last_seen_at from"
            " marts.customer_identities where identifier_type = 'email' and customer_id < 4"
            " order by all",
        ) == [
            (1, "ann@example.com", at("2026-06-01T08:00:00"), at("2026-06-06T12:00:00")),
            (2, "ben@example.com", at("2026-06-01T08:00:00"), at("2026-06-06T12:00:00")),
            (3, "cat2@example.com", at("2026-06-05T08:00:00"), at("2026-06-05T08:00:00")),
            (3, "cat@example.com", at("2026-06-01T08:00:00"), at("2026-06-07T08:00:00")),
        ]
        assert rows(
            warehouse, "select * from intermediate.int_unattributed_activity order by kind"
        ) == [("anonymous_weblog_events", 0, 0), ("guest_orders_unmatched_email", 1, 1)]
    assert_same_relations(inc, full)
