"""The fan-out fast path (rows written straight to an idle client's socket by the feed) keeps the
stream's promises: order, no gap, no duplicate, when the socket refuses and the queue takes over
and when it hands back."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone

from hub.api.permissions import Role
from hub.api.principal import Principal
from hub.stream.delivery import ClientQueue, Outcome, serve
from hub.stream.messages import Outgoing, Row, ws_text_frame
from hub.stream.settings import StreamSettings
from shared.clock import SYSTEM_CLOCK
from support.waiting import wait_until

OPERATOR = Principal(user_id=1, email="op@example.com", role=Role.OPERATOR)


def _row(seq: int, object_id: int = 1) -> Row:
    return Row.from_record(seq, datetime.now(timezone.utc), "alarm.new", object_id, '{"n": %d}' % seq)


class _Feed:
    """What delivery needs of the feed, with the pages offered by the test instead."""

    head = 0
    ring = None

    def __init__(self) -> None:
        self.queue: ClientQueue | None = None

    def subscribe(self, queue: ClientQueue) -> int:
        self.queue = queue
        return self.head

    def unsubscribe(self, queue: ClientQueue) -> None:
        self.queue = None


class _Sink:
    """Records what reached the client, by either path; the fast path can be closed at will."""

    transport = "ws"

    def __init__(self) -> None:
        self.received: list[int] = []
        self.direct_pages = 0
        self.accepts_direct = True

    async def send(self, message: Outgoing) -> None:
        await asyncio.sleep(0)  # a real write may yield; rows offered meanwhile must queue
        if message.kind == "change":
            assert message.event_id is not None
            self.received.append(message.event_id)

    def abort(self) -> None:
        raise AssertionError("a reading client is never aborted")

    def write_now(self, rows: list[Row]) -> bool:
        if not self.accepts_direct:
            return False
        self.direct_pages += 1
        self.received.extend(r.seq for r in rows)
        return True


def test_a_ws_frame_is_a_final_unmasked_text_frame_of_the_right_length() -> None:
    assert ws_text_frame(b"hi") == b"\x81\x02hi"
    assert ws_text_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert ws_text_frame(b"x" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")
    assert _row(3).ws_frame.endswith(_row(3).data)


async def test_rows_stay_in_order_when_the_socket_refuses_and_the_queue_takes_over() -> None:
    feed, sink, stop = _Feed(), _Sink(), asyncio.Event()
    settings = StreamSettings(heartbeat_s=60.0)
    task = asyncio.create_task(serve(feed=feed, pool=None, principal=OPERATOR, cursor=None,  # type: ignore[arg-type]
                                     sink=sink, settings=settings, clock=SYSTEM_CLOCK, rng=random.Random(1),
                                     stop=stop))
    await wait_until(lambda: feed.queue is not None and feed.queue.direct is not None, what="delivery idle")
    queue = feed.queue
    assert queue is not None
    queue.offer([_row(1), _row(2)])
    assert sink.received == [1, 2] and sink.direct_pages == 1  # written by the feed's own call

    sink.accepts_direct = False
    queue.offer([_row(3)])             # refused: queued, the delivery task is woken
    sink.accepts_direct = True
    queue.offer([_row(4), _row(5)])    # the socket would take it, but 3 is still queued: so must it be
    assert sink.received == [1, 2]
    await wait_until(lambda: sink.received == [1, 2, 3, 4, 5], what="the queued rows")
    await wait_until(lambda: queue.direct is not None, what="delivery idle again")
    queue.offer([_row(6, object_id=9), _row(7)])
    assert sink.received == [1, 2, 3, 4, 5, 6, 7] and sink.direct_pages == 2

    stop.set()
    assert await asyncio.wait_for(task, 5) == Outcome.SHUTDOWN
    assert sink.received == list(range(1, 8))


async def test_the_fast_path_does_not_pass_invisible_rows() -> None:
    technician = Principal(user_id=2, email="tech@example.com", role=Role.TECHNICIAN, objects=frozenset({5}))
    feed, sink, stop = _Feed(), _Sink(), asyncio.Event()
    task = asyncio.create_task(serve(feed=feed, pool=None, principal=technician, cursor=None,  # type: ignore[arg-type]
                                     sink=sink, settings=StreamSettings(heartbeat_s=60.0), clock=SYSTEM_CLOCK,
                                     rng=random.Random(1), stop=stop))
    await wait_until(lambda: feed.queue is not None and feed.queue.direct is not None, what="delivery idle")
    assert feed.queue is not None
    feed.queue.offer([_row(1, object_id=4), _row(2, object_id=5), _row(3, object_id=None)])  # type: ignore[arg-type]
    feed.queue.offer([_row(4, object_id=4)])
    assert sink.received == [2] and sink.direct_pages == 1
    stop.set()
    await asyncio.wait_for(task, 5)



class _Pool:
    """The one query delivery makes for a cursor ahead of the feed: the outbox's head."""

    def __init__(self, head: int) -> None:
        self.head = head

    async def fetchval(self, _sql: str) -> int:
        return self.head


async def test_a_cursor_ahead_of_the_feed_gets_no_row_twice_on_the_fast_path() -> None:
    # The client resumes at 5 (from another hub process) while this process's feed is at 2:
    # rows 3..5 will still come through the feed, and the client has them already.
    feed, sink, stop = _Feed(), _Sink(), asyncio.Event()
    feed.head = 2
    task = asyncio.create_task(serve(feed=feed, pool=_Pool(6), principal=OPERATOR, cursor=5,  # type: ignore[arg-type]
                                     sink=sink, settings=StreamSettings(heartbeat_s=60.0), clock=SYSTEM_CLOCK,
                                     rng=random.Random(1), stop=stop))
    await wait_until(lambda: feed.queue is not None and feed.queue.direct is not None, what="delivery idle")
    assert feed.queue is not None
    feed.queue.offer([_row(3), _row(4)])
    feed.queue.offer([_row(5), _row(6)])
    assert sink.received == [6]
    stop.set()
    await asyncio.wait_for(task, 5)
