"""The load generator: raw HTTP/1.1 keep-alive connections driven from asyncio on uvloop.

Two modes:

- closed loop: ``concurrency`` connections, each sending its next request when the answer to
  the last one came. Gives the throughput a number of busy tills gets out of the server.
- open loop: requests fall due at a fixed rate whatever the server does, spread over a pool
  of connections. Latency counts from when a request was *due*, not from when it went out: a
  server that stalls delays the requests behind the stall too, and those delays are counted
  (coordinated omission corrected, as wrk2 does).

Why not httpx: its pure-Python request and response machinery costs more CPU per request than
the app's own handler on the same two cores, so the client, not the server, would set the pace.
Here a request is a ready-made byte string, written to a socket, and the answer is parsed by
httptools (the C parser uvicorn uses; both it and uvloop come with ``uvicorn[standard]``). The
work can be spread over several client processes; each records its latencies in a
:class:`LatencyHistogram` and the histograms are merged.

What is sent comes from a :class:`Workload`: POS identify, preview and complete with members
drawn from a Zipf distribution and identified by their rotating code (:class:`PosWorkload`),
the wallet's home page with signed-in members (:class:`WalletHomeWorkload`), and the balance
and history reads of the JSON API (:class:`AccountReadWorkload`).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import random
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from bench.bulk_seed import BenchMember, BenchProgram

#: The 5-line basket of every preview and complete (amounts in cents).
BASKET: dict[str, Any] = {
    "currency": "EUR",
    "lines": [
        {"line_id": str(i), "sku": f"SKU-{i}", "quantity": 1 + i % 3, "unit_price": 199 + 100 * i}
        for i in range(5)
    ],
}
#: What a status of 0 in the error counts means: the connection broke (no HTTP answer).
CONNECTION_ERROR = 0


# --- latency arithmetic ---------------------------------------------------------------------


class LatencyHistogram:
    """Latencies in logarithmic buckets, HDR-style: any recorded value is known to within
    ``precision`` (relative), from 1 microsecond up, in memory that grows with the range of
    values and not with their number. Histograms of several client processes merge by adding
    their counts.

    A percentile is the upper edge of the bucket holding the value of that rank (never above
    the exact maximum), so it overstates by less than ``precision`` and never understates.
    """

    def __init__(self, precision: float = 0.01) -> None:
        self.precision = precision
        self._log_ratio = math.log1p(precision)
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.total_seconds = 0.0
        self.max_seconds = 0.0
        self.min_seconds = math.inf

    def _bucket(self, seconds: float) -> int:
        micros = max(seconds * 1e6, 1.0)
        return int(math.log(micros) / self._log_ratio)

    def _upper_edge(self, bucket: int) -> float:
        return math.exp((bucket + 1) * self._log_ratio) / 1e6

    def record(self, seconds: float) -> None:
        self.counts[self._bucket(seconds)] += 1
        self.count += 1
        self.total_seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.min_seconds = min(self.min_seconds, seconds)

    def merge(self, other: LatencyHistogram) -> None:
        if other.precision != self.precision:
            raise ValueError("histograms of different precision do not merge")
        self.counts.update(other.counts)
        self.count += other.count
        self.total_seconds += other.total_seconds
        self.max_seconds = max(self.max_seconds, other.max_seconds)
        self.min_seconds = min(self.min_seconds, other.min_seconds)

    def percentile(self, percent: float) -> float:
        """The smallest latency that ``percent`` % of the recorded ones do not exceed
        (seconds); 0.0 for an empty histogram."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percentile {percent} is outside 0..100")
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(self.count * percent / 100))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(self._upper_edge(bucket), self.max_seconds)
        return self.max_seconds

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.count if self.count else 0.0


def due_time(start: float, rate: float, index: int) -> float:
    """When request ``index`` (0, 1, ...) of an open-loop run at ``rate`` per second falls due."""
    return start + index / rate


def corrected_latency(due: float, answered: float) -> float:
    """An open-loop request's latency: from when it was due, not from when it was sent, so
    time spent waiting behind a stalled request counts (coordinated omission)."""
    return answered - due


class ZipfSampler:
    """Draws ranks 0..n-1 with probability proportional to 1 / (rank + 1) ** s: a few members
    shop very often, most rarely. Inverse transform over the cumulative weights."""

    def __init__(self, n: int, s: float) -> None:
        if n < 1:
            raise ValueError("a Zipf sampler needs at least one rank")
        self.n = n
        self.s = s
        self._cumulative: list[float] = list(
            accumulate(1.0 / float(rank**s) for rank in range(1, n + 1))
        )
        self._total = self._cumulative[-1]

    def rank_for(self, u: float) -> int:
        """The rank a uniform draw ``u`` in [0, 1) maps to."""
        return min(bisect_left(self._cumulative, u * self._total), self.n - 1)

    def sample(self, rng: random.Random) -> int:
        return self.rank_for(rng.random())

    def share_of_top(self, ranks: int) -> float:
        """The fraction of draws that fall on the ``ranks`` most frequent ranks."""
        return self._cumulative[min(ranks, self.n) - 1] / self._total


# --- requests ---------------------------------------------------------------------------------


def http_request(
    method: str,
    path: str,
    host: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """One HTTP/1.1 request on a keep-alive connection, as the bytes that go on the wire."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class Workload:
    """What one client process sends. Built in the parent, pickled to client processes, where
    :meth:`start` runs once before the first request."""

    def start(self, process_index: int, seed: int) -> None:
        self.rng = random.Random(seed * 1000 + process_index)
        self.process_index = process_index

    def request(self, host: str, connection: int, sequence: int) -> bytes:
        raise NotImplementedError

    def observe(self, status: int, body: bytes) -> None:
        """Called with every answer, in the measuring window or not (only when
        :attr:`wants_bodies`)."""

    wants_bodies = False

    def tally(self) -> dict[str, int]:
        """What :meth:`observe` added up, merged over processes by summing."""
        return {}


class PosWorkload(Workload):
    """POS identify, preview or complete for Zipf-drawn members (or one member), each
    identified by the rotating code their wallet would show now. Connection ``i`` is till
    ``i`` (its own terminal key). Every complete has a fresh transaction id."""

    def __init__(
        self,
        operation: str,
        program: BenchProgram,
        *,
        zipf_s: float = 1.1,
        only_member: BenchMember | None = None,
        run_tag: str = "b",
        count_points: bool = False,
    ) -> None:
        if operation not in {"identify", "preview", "complete"}:
            raise ValueError(f"unknown POS operation {operation!r}")
        self.operation = operation
        self.program = program
        self.zipf_s = zipf_s
        self.only_member = only_member
        self.run_tag = run_tag
        self.wants_bodies = count_points
        self._points = 0
        self._successes = 0

    def start(self, process_index: int, seed: int) -> None:
        super().start(process_index, seed)
        self._sampler = ZipfSampler(len(self.program.members), self.zipf_s)
        self._codes: dict[int, tuple[int, str]] = {}
        self._auth = [f"Bearer {key}" for key in self.program.terminal_keys]

    def _member(self) -> BenchMember:
        if self.only_member is not None:
            return self.only_member
        return self.program.members[self._sampler.sample(self.rng)]

    def _code(self, member: BenchMember, now: datetime) -> str:
        from bench.bulk_seed import rotating_code_for

        # A wallet's code changes every 30 s; computing it once per member and step is what
        # the wallet does too.
        step = int(now.timestamp()) // 30
        cached = self._codes.get(member.member_id)
        if cached is None or cached[0] != step:
            cached = (step, rotating_code_for(self.program, member, now))
            self._codes[member.member_id] = cached
        return cached[1]

    def request(self, host: str, connection: int, sequence: int) -> bytes:
        now = datetime.now(UTC)
        scan = {"value": self._code(self._member(), now)}
        headers = [("Authorization", self._auth[connection % len(self._auth)])]
        document: dict[str, Any]
        if self.operation == "identify":
            path, document = "/api/v1/pos/identify", {"member": scan}
        elif self.operation == "preview":
            path, document = "/api/v1/pos/preview", {"member": scan, "order": BASKET}
        else:
            transaction = f"{self.run_tag}-{connection}-{sequence}"
            path = f"/api/v1/pos/transactions/{transaction}/complete"
            document = {"occurred_at": now.isoformat(), "member": scan, "order": BASKET}
        return http_request("POST", path, host, headers, msgspec.json.encode(document))

    def observe(self, status: int, body: bytes) -> None:
        if 200 <= status < 300:
            self._successes += 1
            self._points += int(msgspec.json.decode(body)["points_earned"])

    def tally(self) -> dict[str, int]:
        return {"successes": self._successes, "points_earned": self._points}


class WalletHomeWorkload(Workload):
    """The wallet's home page of signed-in members: each request carries one of the given
    session tokens in the wallet's cookie, chosen at random."""

    def __init__(self, program_id: int, session_tokens: Sequence[str], cookie_name: str) -> None:
        self.path = f"/wallet/{program_id}"
        self.cookies = [f"{cookie_name}={token}" for token in session_tokens]

    def request(self, host: str, connection: int, sequence: int) -> bytes:
        cookie = self.cookies[self.rng.randrange(len(self.cookies))]
        return http_request("GET", self.path, host, [("Cookie", cookie)])


class AccountReadWorkload(Workload):
    """The JSON API's balance or first history page of uniformly drawn members."""

    def __init__(self, what: str, program_id: int, member_ids: Sequence[int], api_key: str):
        if what not in {"balance", "history"}:
            raise ValueError(f"unknown read {what!r}")
        self.what = what
        self.program_id = program_id
        self.member_ids = list(member_ids)
        self.api_key = api_key

    def request(self, host: str, connection: int, sequence: int) -> bytes:
        member_id = self.member_ids[self.rng.randrange(len(self.member_ids))]
        path = f"/api/v1/programs/{self.program_id}/members/{member_id}/{self.what}"
        return http_request("GET", path, host, [("Authorization", f"Bearer {self.api_key}")])


# --- connections ------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with one request in flight at a time."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpResponseParser(self)
        self._parser_error = httptools.HttpParserError
        self._transport: Any = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has write().
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._parser_error as error:
            self._fail(ConnectionError(f"bad HTTP answer: {error}"))
            self.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = (self._parser.get_status_code(), b"".join(self._body))
        self._body.clear()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("the server closed the connection"))

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self._transport is None:
            raise ConnectionError("the connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._waiter


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


# --- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class LoadResult:
    """One phase's answers that fell in its measuring window, merged over client processes."""

    histogram: LatencyHistogram
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    #: CPU seconds the client processes used during the phase (the client must not be the
    #: bottleneck: compare with ``seconds`` times the number of processes).
    client_cpu_seconds: float = 0.0
    processes: int = 1
    #: Open loop: requests the client never sent because the run overran its time limit.
    #: The histogram holds each with the time it had waited when the client gave up: a lower
    #: bound of its latency, so that a server which cannot keep up does not look fast.
    unsent: int = 0
    tally: Counter[str] = field(default_factory=Counter)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def per_second(self) -> float:
        """Successful answers per second of the measuring window."""
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> dict[str, int]:
        return {
            ("connection" if status == CONNECTION_ERROR else str(status)): count
            for status, count in sorted(self.statuses.items())
            if not 200 <= status < 300
        }

    @property
    def client_cpu_share(self) -> float:
        """Client CPU used per client process, as a fraction of one core."""
        return self.client_cpu_seconds / (self.seconds * self.processes) if self.seconds else 0.0

    def merge(self, other: LoadResult) -> None:
        self.histogram.merge(other.histogram)
        self.statuses.update(other.statuses)
        self.client_cpu_seconds += other.client_cpu_seconds
        self.unsent += other.unsent
        self.tally.update(other.tally)


@dataclass(frozen=True)
class Phase:
    """What one client process runs: closed loop (``rate`` None) or open loop."""

    target: Target
    workload: Workload
    connections: int
    seconds: float
    warmup: float = 0.0
    rate: float | None = None
    #: Open loop: this process sends requests process_index, +processes, +2 * processes, ...
    processes: int = 1
    process_index: int = 0
    seed: int = 1
    #: This process's first connection's number among all client processes' connections
    #: (connection ``i`` is till ``i``).
    first_connection: int = 0
    #: Open loop: stop sending this long after the planned end, however far behind.
    overrun_limit: float = 10.0


async def _exchange(
    connection: _Connection | None, target: Target, raw: bytes
) -> tuple[_Connection | None, int, bytes]:
    """Send one request, opening a new connection first if there is none; status 0 and no
    connection if it broke."""
    try:
        if connection is None or connection.closed:
            connection = await _connect(target.host, target.port)
        status, body = await connection.exchange(raw)
        return connection, status, body
    except (ConnectionError, OSError):
        if connection is not None:
            connection.close()
        return None, CONNECTION_ERROR, b""


async def run_phase(phase: Phase, start: float | None = None) -> LoadResult:
    """Run ``phase`` in this process's event loop. ``start``: when measuring begins (after
    the warm-up), on the monotonic clock shared by the machine's processes."""
    workload = phase.workload
    workload.start(phase.process_index, phase.seed)
    target = phase.target
    connections: list[_Connection | None] = [
        await _connect(target.host, target.port) for _ in range(phase.connections)
    ]
    if start is None:
        start = time.monotonic() + phase.warmup + 0.05
    end = start + phase.seconds
    histogram = LatencyHistogram()
    statuses: Counter[int] = Counter()
    cpu_before = time.process_time()
    unsent = 0

    def settle(status: int, body: bytes, latency: float, counted: bool) -> None:
        # Every answer is observed, also those outside the measuring window: what the
        # workload tallies (points earned) must match what was written.
        if workload.wants_bodies:
            workload.observe(status, body)
        if counted:
            histogram.record(latency)
            statuses[status] += 1

    async def closed(slot: int) -> None:
        sequence = 0
        while time.monotonic() < end:
            raw = workload.request(target.authority, phase.first_connection + slot, sequence)
            sequence += 1
            sent = time.monotonic()
            connections[slot], status, body = await _exchange(connections[slot], target, raw)
            answered = time.monotonic()
            settle(status, body, answered - sent, start <= answered <= end)
            if status == CONNECTION_ERROR:
                await asyncio.sleep(0.01)  # a server that is down is not hammered in a spin

    first_index = 0
    if phase.rate is not None:
        # Requests due during the warm-up are sent but not counted.
        # A multiple of the process count: process p sends the indices congruent to p.
        first_index = -phase.processes * math.ceil(phase.warmup * phase.rate / phase.processes)
    planned = math.ceil(phase.seconds * phase.rate) if phase.rate is not None else 0
    next_index = [first_index + phase.process_index]

    async def opened(slot: int) -> None:
        nonlocal unsent
        assert phase.rate is not None
        sequence = 0
        while True:
            index = next_index[0]
            if index >= planned:
                return
            next_index[0] += phase.processes
            due = due_time(start, phase.rate, index)
            now = time.monotonic()
            if now > end + phase.overrun_limit:
                for late in range(max(index, phase.process_index), planned, phase.processes):
                    histogram.record(now - due_time(start, phase.rate, late))
                    unsent += 1
                next_index[0] = planned
                return
            if due > now:
                await asyncio.sleep(due - now)
            raw = workload.request(target.authority, phase.first_connection + slot, sequence)
            sequence += 1
            connections[slot], status, body = await _exchange(connections[slot], target, raw)
            answered = time.monotonic()
            settle(status, body, corrected_latency(due, answered), index >= 0)

    driver = closed if phase.rate is None else opened
    await asyncio.gather(*(driver(slot) for slot in range(phase.connections)))
    cpu = time.process_time() - cpu_before
    for connection in connections:
        if connection is not None:
            connection.close()
    return LoadResult(
        histogram=histogram,
        seconds=phase.seconds,
        statuses=statuses,
        client_cpu_seconds=cpu,
        unsent=unsent,
        tally=Counter(workload.tally()),
    )


def _client_process(phase: Phase, ready: Any, starts: Any, results: Any) -> None:
    """A client process: connect, say ready, wait for the common start, run, send results."""
    import uvloop

    async def main() -> LoadResult:
        ready.put(phase.process_index)
        start = starts.get()
        return await run_phase(phase, start)

    results.put(uvloop.run(main()))


async def drive(
    target: Target,
    workload: Workload,
    *,
    connections: int,
    seconds: float,
    warmup: float = 0.0,
    rate: float | None = None,
    processes: int = 1,
    seed: int = 1,
    overrun_limit: float = 10.0,
) -> LoadResult:
    """Run a phase: closed loop over ``connections`` connections, or open loop at ``rate``
    requests per second spread over them; in this process or in ``processes`` client
    processes whose histograms are merged."""
    if processes <= 1:
        phase = Phase(
            target,
            workload,
            connections,
            seconds,
            warmup,
            rate,
            seed=seed,
            overrun_limit=overrun_limit,
        )
        return await run_phase(phase)
    context = multiprocessing.get_context("spawn")
    ready, starts, results = context.Queue(), context.Queue(), context.Queue()
    children = []
    first_connection = 0
    for index in range(processes):
        share = max(1, connections // processes + (1 if index < connections % processes else 0))
        phase = Phase(
            target,
            workload,
            share,
            seconds,
            warmup,
            rate,
            processes=processes,
            process_index=index,
            seed=seed,
            first_connection=first_connection,
            overrun_limit=overrun_limit,
        )
        first_connection += share
        child = context.Process(target=_client_process, args=(phase, ready, starts, results))
        child.start()
        children.append(child)
    loop = asyncio.get_running_loop()
    try:
        for _ in children:
            await loop.run_in_executor(None, ready.get, True, 120)
        start = time.monotonic() + warmup + 0.2
        for _ in children:
            starts.put(start)
        merged = LoadResult(LatencyHistogram(), seconds, processes=processes)
        for _ in children:
            limit = warmup + seconds + 180
            merged.merge(await loop.run_in_executor(None, results.get, True, limit))
    except queue.Empty as error:
        raise RuntimeError("a client process did not answer in time") from error
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return merged
