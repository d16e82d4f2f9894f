"""Priorities: the stride scheduler, the level specs, producer routing and the test kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers import Context, Priorities, Worker, default_weights
from consumers._pauses import PauseSet
from consumers._priority import PRIORITY, PriorityScheduler, Stride, subscription
from consumers.testing import TestPipeline
from examples.orders.events import ReminderDue
from pipeline import TopicSpec, load_topic_specs, priority_levels
from pipeline._errors import ConfigError
from producers._priority import check_levels, priority_target
from tests.parity import reminder


def _serve(stride: Stride, queued: set[int], rounds: int, per_tick: int = 10) -> list[int]:
    """Run ``rounds`` ticks with every level in ``queued`` backlogged; served count per level."""
    served = [0] * len(stride.weights)
    consumed: dict[int, int] = {}
    for _ in range(rounds):
        level = stride.update(queued, consumed)
        assert level is not None
        served[level] += per_tick
        consumed = {level: per_tick}
    return served


# -- the scheduler logic ----------------------------------------------------------------------


def test_default_weights_double_per_level() -> None:
    assert default_weights(3) == (4.0, 2.0, 1.0)
    assert default_weights(1) == (1.0,)
    assert Priorities("orders", 2).shares == pytest.approx((2 / 3, 1 / 3))


def test_one_queued_level_needs_no_pausing() -> None:
    stride = Stride((2.0, 1.0), quantum=50)
    assert stride.update({1}, {}) is None
    assert stride.update(set(), {1: 100}) is None


@pytest.mark.parametrize(
    ("weights", "expected"),
    [((2.0, 1.0), (2 / 3, 1 / 3)), ((4.0, 2.0, 1.0), (4 / 7, 2 / 7, 1 / 7))],
)
def test_backlogged_levels_get_their_weighted_share(
    weights: tuple[float, ...], expected: tuple[float, ...]
) -> None:
    stride = Stride(weights, quantum=50)
    served = _serve(stride, set(range(len(weights))), rounds=3000)
    total = sum(served)
    for got, share in zip(served, expected, strict=True):
        assert got / total == pytest.approx(share, abs=0.02)


def test_high_level_goes_first_when_it_arrives() -> None:
    stride = Stride((2.0, 1.0), quantum=50)
    assert stride.update({1}, {}) is None  # low alone for a long time ...
    assert stride.update({1}, {1: 10_000}) is None
    # ... earns no credit against high: high, arriving now, is served at once.
    assert stride.update({0, 1}, {1: 10}) == 0


def test_low_level_is_not_starved_by_a_high_level_that_keeps_arriving() -> None:
    stride = Stride((2.0, 1.0), quantum=50)
    served = _serve(stride, {0, 1}, rounds=200)
    assert served[1] > 0
    # High goes away and comes back again and again: low keeps its share meanwhile.
    consumed: dict[int, int] = {}
    low = 0
    for tick in range(600):
        queued = {0, 1} if tick % 3 else {1}
        level = stride.update(queued, consumed)
        level = 1 if level is None else level
        consumed = {level: 10}
        low += level == 1
    assert low / 600 >= 1 / 3 - 0.02


def test_turns_last_a_quantum_times_the_weight() -> None:
    stride = Stride((2.0, 1.0), quantum=50)
    switches = 0
    last = None
    consumed: dict[int, int] = {}
    for _ in range(300):  # 3000 records at 10 a tick
        level = stride.update({0, 1}, consumed)
        switches += level != last
        last = level
        consumed = {level: 10} if level is not None else {}
    # Steady turns are 100 records (50 x 1) of low and 100 (50 x 2) of high: 30 switches.
    assert 20 <= switches <= 40


class _Consumer:
    """Positions and cached watermarks, as the scheduler reads them from librdkafka."""

    def __init__(self, ends: dict[tuple[str, int], int]) -> None:
        self.ends = ends
        self.positions: dict[tuple[str, int], int] = {}

    def position(self, tps: list) -> list:  # type: ignore[type-arg]
        for tp in tps:
            tp.offset = self.positions.get((tp.topic, tp.partition), -1001)
        return tps

    def get_watermark_offsets(self, tp, cached: bool = False) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        return 0, self.ends.get((tp.topic, tp.partition), -1001)


class _Part:
    def __init__(self) -> None:
        self.at_end = False
        self.in_flight = 0


def test_scheduler_holds_the_waiting_level_through_the_pause_set() -> None:
    pauses = PauseSet()
    scheduler = PriorityScheduler([Priorities("o", 2, quantum=50)], pauses)
    parts = {("o.p0", 0): _Part(), ("o.p1", 0): _Part(), ("other", 0): _Part()}
    consumer = _Consumer({("o.p0", 0): 0, ("o.p1", 0): 5000, ("other", 0): 10})
    consumer.positions = {("o.p1", 0): 100}
    scheduler.at_end(("o.p0", 0), 0)
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert not pauses.holds(PRIORITY)  # only low is queued: consume it at full speed
    consumer.ends[("o.p0", 0)] = 3  # high records arrived (seen in a fetch response)
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert pauses.wanted(parts) == {("o.p1", 0)}
    assert pauses.reasons(("o.p1", 0)) == [PRIORITY]
    consumer.positions[("o.p0", 0)] = 3  # high consumed: low runs again
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert not pauses.holds(PRIORITY)
    assert scheduler.level_of("o.p1") == ("o", 1)
    assert scheduler.level_of("other") is None


def test_lower_levels_pause_at_their_in_flight_limit_and_resume_at_half() -> None:
    pauses = PauseSet()
    scheduler = PriorityScheduler([Priorities("o", 3, low_in_flight=100)], pauses)
    parts = {("o.p0", 0): _Part(), ("o.p1", 0): _Part(), ("o.p2", 0): _Part()}
    consumer = _Consumer({("o.p0", 0): 0, ("o.p1", 0): 0, ("o.p2", 0): 5000})
    consumer.positions = {("o.p2", 0): 10}
    scheduler.at_end(("o.p0", 0), 0)
    scheduler.at_end(("o.p1", 0), 0)
    parts[("o.p2", 0)].in_flight = 99
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert not pauses.holds(PRIORITY)
    parts[("o.p2", 0)].in_flight = 60
    parts[("o.p1", 0)].in_flight = 40  # p1 and p2 together: 100 dispatched
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert pauses.wanted(parts) == {("o.p1", 0), ("o.p2", 0)}  # p0 is never held for it
    parts[("o.p1", 0)].in_flight = 0  # 60 left: still above half
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert pauses.wanted(parts) == {("o.p1", 0), ("o.p2", 0)}
    parts[("o.p2", 0)].in_flight = 50
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert not pauses.holds(PRIORITY)


def test_unknown_position_counts_as_queued_until_the_partition_end() -> None:
    pauses = PauseSet()
    scheduler = PriorityScheduler([Priorities("o", 2)], pauses)
    parts = {("o.p0", 0): _Part(), ("o.p1", 0): _Part()}
    consumer = _Consumer({("o.p1", 0): 50})
    consumer.positions = {("o.p1", 0): 0}
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert pauses.wanted(parts) == {("o.p1", 0)}  # p0 not known yet: high first
    parts[("o.p0", 0)].at_end = True
    scheduler.tick(consumer, parts)  # type: ignore[arg-type]
    assert not pauses.holds(PRIORITY)


# -- specs and validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": 0}, "priority levels must be 1..10"),
        ({"levels": 11}, "priority levels must be 1..10"),
        ({"levels": 2, "weights": (1.0,)}, "1 weight"),
        ({"levels": 2, "weights": (1.0, 0.0)}, "must be > 0"),
        ({"levels": 2, "weights": (1.0, float("nan"))}, "must be > 0"),
        ({"levels": 2, "weights": (1.0, "x")}, "not a number"),
        ({"levels": 2, "quantum": 0}, "quantum"),
    ],
)
def test_bad_priorities_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Priorities("orders", **kwargs)  # type: ignore[arg-type]


def test_worker_priorities_replace_the_topic_in_the_subscription() -> None:
    app = Worker(group="g", topics=["orders", "plain"])
    app.priority("orders", 3, weights=[3, 2, 1])
    assert app.priorities["orders"].weights == (3.0, 2.0, 1.0)
    assert subscription(app.topics, app.priorities) == [
        "orders.p0",
        "orders.p1",
        "orders.p2",
        "plain",
    ]
    with pytest.raises(ConfigError, match="already set"):
        app.priority("orders", 2)
    with pytest.raises(ConfigError, match="not one of the worker's topics"):
        app.priority("nope", 2)


def test_worker_refuses_priorities_in_exactly_once_mode() -> None:
    app = Worker(group="g", topics=["orders"], exactly_once=True)
    app.priority("orders", 2)
    app.handler(ReminderDue)(lambda event, ctx: None)
    with pytest.raises(ConfigError, match="exactly-once"):
        app.run()


def test_producer_priority_routing() -> None:
    assert priority_target("orders", 0, {}) == "orders.p0"
    assert priority_target("orders", None, {}) == "orders"
    assert priority_target("orders", None, {"orders": 3}) == "orders.p2"
    assert priority_target("orders", 1, {"orders": 3}) == "orders.p1"
    with pytest.raises(ConfigError, match=r"must be 0\.\.2 \(3 levels\), got 3"):
        priority_target("orders", 3, {"orders": 3})
    with pytest.raises(ConfigError, match=r"priority level must be 0\.\.9"):
        priority_target("orders", 10, {})
    with pytest.raises(ConfigError, match="int level"):
        priority_target("orders", "high", {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="int level"):
        priority_target("orders", True, {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"levels must be 1\.\.10"):
        check_levels({"orders": 0})


def test_topic_spec_with_priorities_is_its_level_topics(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(
        "[defaults]\npartitions = 4\n[topics.orders]\npriorities = 2\n"
        '[topics.plain]\nconfigs = { "retention.ms" = "1000" }\n'
    )
    specs = load_topic_specs(path)
    topics = [t for s in specs for t in s.kafka_topics()]
    assert [(t.name, t.partitions) for t in topics] == [
        ("orders.p0", 4),
        ("orders.p1", 4),
        ("plain", 4),
    ]
    assert priority_levels(specs) == {"orders": 2}
    with pytest.raises(ConfigError, match=r"priority levels must be 1\.\.10"):
        TopicSpec("orders", priorities=11)
    with pytest.raises(ConfigError, match="too long"):
        TopicSpec("x" * 248, priorities=2)
    path.write_text("[topics.orders]\npriorities = 12\n")
    with pytest.raises(ConfigError, match=r"topics\.toml: topic orders"):
        load_topic_specs(path)


# -- the test kit -----------------------------------------------------------------------------


def _kit(levels: int, **options: object) -> tuple[TestPipeline, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    app = Worker(group="g", topics=["reminders"], **options)  # type: ignore[arg-type]
    app.priority("reminders", levels, quantum=20)

    @app.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        seen.append((ctx.topic, event.message))

    return TestPipeline(app, partitions=1), seen


def test_testkit_routes_priorities_to_level_topics() -> None:
    tp, seen = _kit(3)
    tp.send(reminder("urgent"), key="k", priority=0)
    tp.send(reminder("default"), key="k")
    with pytest.raises(ConfigError, match=r"must be 0\.\.2"):
        tp.send(reminder("bad"), key="k", priority=3)
    tp.run_until_idle()
    assert sorted(seen) == [("reminders.p0", "urgent"), ("reminders.p2", "default")]
    tp.close()


def test_testkit_serves_backlogged_levels_by_weight() -> None:
    tp, seen = _kit(2, batch_size=10)
    for i in range(600):
        tp.send(reminder(f"low-{i}"), key=f"k{i}", priority=1)
        tp.send(reminder(f"high-{i}"), key=f"k{i}", priority=0)
    tp.run_until_idle()
    assert len(seen) == 1200
    first = [topic for topic, _ in seen[:600]]
    # Both levels backlogged: 2/3 high, 1/3 low (without the scheduler the in-memory
    # consumer would hand over the whole of p0 first, starving p1).
    assert first.count("reminders.p1") / 600 == pytest.approx(1 / 3, abs=0.06)
    tp.close()
