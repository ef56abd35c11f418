"""The benchmark suite's arithmetic: latency histograms and percentiles, the open loop's
coordinated-omission correction (against a server on loopback that stalls), the Zipf sampler,
pgbench's output, and the report's targets and rendering."""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.load import (
    LatencyHistogram,
    Target,
    Workload,
    ZipfSampler,
    corrected_latency,
    drive,
    due_time,
    http_request,
)
from bench.report import (
    BenchResults,
    HotMemberFigure,
    LoadFigure,
    Machine,
    PgbenchFigure,
    PlanText,
    ServiceReadFigure,
    SweepResult,
    WorkerMemory,
    console_table,
    render_markdown,
    targets,
    write_chart,
)
from bench.suite import parse_pgbench_output, pgbench_log_latencies

# --- histogram ---------------------------------------------------------------------------------


def exact_percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * percent / 100)) - 1]


@given(
    st.lists(st.floats(min_value=1e-6, max_value=100.0), min_size=1, max_size=300),
    st.sampled_from([0.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_a_percentile_is_never_below_the_exact_value_nor_more_than_one_percent_above(
    values: list[float], percent: float
) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    exact = exact_percentile(values, percent)
    found = histogram.percentile(percent)
    assert exact <= found <= exact * 1.01 + 1e-12
    assert found <= max(values)


def test_percentiles_of_a_known_distribution() -> None:
    histogram = LatencyHistogram()
    for millis in range(1, 1001):
        histogram.record(millis / 1000)
    assert histogram.count == 1000
    assert histogram.percentile(50) == pytest.approx(0.500, rel=0.01)
    assert histogram.percentile(99) == pytest.approx(0.990, rel=0.01)
    assert histogram.percentile(100) == histogram.max_seconds == 1.0
    assert histogram.mean_seconds == pytest.approx(0.5005)


def test_merged_histograms_answer_as_one_that_recorded_everything() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(200) for _ in range(2000)]
    whole, first, second = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for index, value in enumerate(values):
        whole.record(value)
        (first if index % 2 else second).record(value)
    first.merge(second)
    assert first.count == whole.count
    assert first.max_seconds == whole.max_seconds
    for percent in (50, 90, 99, 99.9):
        assert first.percentile(percent) == whole.percentile(percent)


def test_an_empty_histogram_has_zero_percentiles_and_bad_percentiles_are_refused() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentile(99) == 0.0
    with pytest.raises(ValueError, match="outside"):
        histogram.percentile(101)
    with pytest.raises(ValueError, match="precision"):
        histogram.merge(LatencyHistogram(precision=0.05))


# --- open loop ---------------------------------------------------------------------------------


def test_open_loop_latency_counts_from_when_a_request_was_due() -> None:
    start = 100.0
    assert due_time(start, 50.0, 0) == 100.0
    assert due_time(start, 50.0, 10) == pytest.approx(100.2)
    # Due at 100.2, sent late at 100.7 behind a stall, answered at 100.71: it waited 510 ms.
    assert corrected_latency(due_time(start, 50.0, 10), 100.71) == pytest.approx(0.51)


class StallingServer:
    """An HTTP server on loopback: 200 at once, except that one request is answered only
    after ``stall`` seconds and every ``refuse_every``-th with 503."""

    def __init__(self, stall_at: int, stall: float, refuse_every: int = 0) -> None:
        self.stall_at = stall_at
        self.stall = stall
        self.refuse_every = refuse_every
        self.requests = 0
        #: Seconds every answer takes.
        self.stall_every = 0.0
        self.handlers: list[asyncio.Task[None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            self.requests += 1
            number = self.requests
            if number == self.stall_at:
                await asyncio.sleep(self.stall)
            await asyncio.sleep(self.stall_every)
            refuse = self.refuse_every and number % self.refuse_every == 0
            status = b"503 Service Unavailable" if refuse else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def finish(self) -> None:
        """Wait for every connection to end (the client closes them when its run ends)."""
        await asyncio.gather(*self.handlers)


class Ping(Workload):
    def request(self, host: str, connection: int, sequence: int) -> bytes:
        return http_request("GET", "/ping", host)


async def serve(server: StallingServer) -> tuple[asyncio.Server, Target]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    return listening, Target("127.0.0.1", port)


async def test_a_stall_delays_every_request_due_during_it_in_the_open_loop() -> None:
    # 100 requests/s over one connection; the 11th takes 0.5 s. The ~50 requests that fell
    # due during the stall waited for it: all of them are slow, not just the stalled one.
    stalling = StallingServer(stall_at=11, stall=0.5)
    listening, target = await serve(stalling)
    async with listening:
        result = await drive(target, Ping(), connections=1, seconds=1.5, rate=100.0)
        await stalling.finish()
    slow = sum(
        count
        for bucket, count in result.histogram.counts.items()
        if result.histogram._upper_edge(bucket) > 0.1
    )
    assert result.succeeded == 150
    assert 35 <= slow <= 60
    assert result.histogram.percentile(99) >= 0.45
    assert result.per_second == pytest.approx(100.0)


async def test_requests_a_slow_server_never_got_count_with_the_time_they_waited() -> None:
    # Every answer takes 0.25 s, 40 requests/s are due for 0.5 s: the client gives up 0.3 s
    # after the planned end, with most requests unsent. They are in the histogram with the
    # time they had waited by then, not left out as if they had been fast.
    slow = StallingServer(stall_at=0, stall=0)
    slow.stall_every = 0.25
    listening, target = await serve(slow)
    async with listening:
        result = await drive(
            target, Ping(), connections=1, seconds=0.5, rate=40.0, overrun_limit=0.3
        )
        await slow.finish()
    assert result.succeeded == 4
    assert result.unsent == 16
    assert result.histogram.count == 20
    assert result.histogram.percentile(99) >= 0.5


class NumberedPing(Workload):
    """Requests that name their connection and sequence number, and a tally of answers."""

    wants_bodies = True

    def start(self, process_index: int, seed: int) -> None:
        super().start(process_index, seed)
        self.answers = 0

    def request(self, host: str, connection: int, sequence: int) -> bytes:
        return http_request("GET", f"/ping/{connection}/{sequence}", host)

    def observe(self, status: int, body: bytes) -> None:
        self.answers += 1

    def tally(self) -> dict[str, int]:
        return {"answers": self.answers}


async def test_client_processes_share_the_rate_and_their_results_merge() -> None:
    paths: list[bytes] = []
    handlers: list[asyncio.Task[None]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            paths.append(head.split(b" ")[1])
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    listening = await asyncio.start_server(record, "127.0.0.1", 0)
    target = Target("127.0.0.1", listening.sockets[0].getsockname()[1])
    async with listening:
        result = await drive(
            target, NumberedPing(), connections=4, seconds=1.0, rate=60.0, processes=2
        )
        await asyncio.gather(*handlers)
    assert result.processes == 2
    assert result.succeeded == 60
    assert result.histogram.count == 60
    assert result.tally == Counter({"answers": 60})
    assert len(paths) == len(set(paths)) == 60
    assert {path.split(b"/")[2] for path in paths} == {b"0", b"1", b"2", b"3"}


async def test_the_closed_loop_counts_answers_by_status() -> None:
    refusing = StallingServer(stall_at=0, stall=0, refuse_every=4)
    listening, target = await serve(refusing)
    async with listening:
        result = await drive(target, Ping(), connections=4, seconds=0.5, warmup=0.1)
        await refusing.finish()
    assert result.answered > 100
    assert result.errors == {"503": result.statuses[503]}
    assert result.succeeded == pytest.approx(result.answered * 3 / 4, abs=8)
    assert result.per_second == result.succeeded / 0.5


async def test_a_server_that_closes_the_connection_counts_as_connection_errors() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    listening = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    target = Target("127.0.0.1", listening.sockets[0].getsockname()[1])
    async with listening:
        result = await drive(target, Ping(), connections=1, seconds=0.2, rate=50.0)
    assert result.succeeded == 0
    assert result.errors == {"connection": 10}


def test_a_request_is_complete_http_with_its_body_length() -> None:
    raw = http_request("POST", "/x", "h:1", [("Authorization", "Bearer k")], b'{"a":"\xc3\xa4"}')
    head, body = raw.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /x HTTP/1.1",
        b"Host: h:1",
        b"Authorization: Bearer k",
        b"Content-Type: application/json",
        b"Content-Length: 10",
    ]
    assert body == b'{"a":"\xc3\xa4"}'


# --- Zipf --------------------------------------------------------------------------------------


def test_zipf_draws_follow_the_power_law() -> None:
    sampler = ZipfSampler(1000, 1.1)
    rng = random.Random(5)
    draws = Counter(sampler.sample(rng) for _ in range(200_000))
    harmonic = sum(1 / rank**1.1 for rank in range(1, 1001))
    assert draws[0] / 200_000 == pytest.approx(1 / harmonic, rel=0.03)
    assert draws[0] / draws[1] == pytest.approx(2**1.1, rel=0.05)
    assert draws[0] / draws[9] == pytest.approx(10**1.1, rel=0.15)
    assert set(draws) <= set(range(1000))
    assert sampler.share_of_top(1) == pytest.approx(1 / harmonic)
    assert sampler.share_of_top(1000) == pytest.approx(1.0)


def test_zipf_ranks_cover_the_unit_interval_in_order() -> None:
    sampler = ZipfSampler(10, 1.1)
    assert sampler.rank_for(0.0) == 0
    assert sampler.rank_for(0.999999) == 9
    ranks = [sampler.rank_for(u / 1000) for u in range(1000)]
    assert ranks == sorted(ranks)
    with pytest.raises(ValueError, match="at least one"):
        ZipfSampler(0, 1.1)


# --- pgbench -----------------------------------------------------------------------------------

PGBENCH_OUTPUT = """\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 4714
number of failed transactions: 0 (0.000%)
latency average = 0.849 ms
initial connection time = 8.389 ms
tps = 2356.486286 (without initial connection time)
"""


def test_pgbench_summary_and_log_are_read() -> None:
    assert parse_pgbench_output(PGBENCH_OUTPUT) == (2356.486286, 4714, 0.849)
    with pytest.raises(RuntimeError, match="no summary"):
        parse_pgbench_output("connection to server failed")
    histogram = LatencyHistogram()
    log = ["0 1 13841 0 1795416328 842740", "0 2 625 0 1795416328 843377", "1 3 failed 0 1 2"]
    pgbench_log_latencies(iter(log), histogram)
    assert histogram.count == 2
    assert histogram.max_seconds == pytest.approx(0.013841)


# --- report ------------------------------------------------------------------------------------


def load(name: str, per_second: float, p99: float, **kwargs: object) -> LoadFigure:
    values: dict[str, object] = dict(
        name=name,
        concurrency=None,
        rate=None,
        seconds=15.0,
        per_second=per_second,
        p50_ms=p99 / 3,
        p99_ms=p99,
        max_ms=p99 * 2,
        answered=int(per_second * 15),
    )
    values.update(kwargs)
    return LoadFigure(**values)  # type: ignore[arg-type]


def results() -> BenchResults:
    machine = Machine(2, "Test CPU", 24.0, "15.20", "3.11.2", "Linux", "2 workers")
    report = BenchResults("2025-01-01 00:00 UTC", "make bench", machine, conditions=["c1"])
    report.closed_loop = [
        load("complete", 300, 8.0, concurrency=1),
        load("complete", 900, 20.0, concurrency=16, app_cpu_cores=1.85),
        load("complete", 850, 90.0, concurrency=64, errors={"503": 2}),
    ]
    report.pgbench = [
        PgbenchFigure(1, 1, 15, 600, 9000, 1.6, 1.5, 3.0, 64),
        PgbenchFigure(16, 2, 15, 1200, 18000, 13.0, 10.0, 30.0, 64),
        PgbenchFigure(64, 2, 15, 1000, 15000, 60.0, 50.0, 120.0, 64),
    ]
    report.half_peak = [
        load("identify", 450, 12.0, rate=450.0),
        load("preview", 450, 30.0, rate=450.0),
        load("complete", 450, 40.0, rate=450.0),
    ]
    report.hot_member = HotMemberFigure(
        load=load("hot member complete", 320, 70.0, concurrency=32),
        terminals=32,
        member_id=7,
        balance_before=100,
        balance_after=150,
        points_reported=50,
        successes=5,
        orders_added=5,
        journals_added=5,
        journal_delta_sum=50,
    )
    report.sweep = SweepResult(1_000_000, 50.0, 20_000.0, "one sweep")
    report.service_reads = [
        ServiceReadFigure("balance", 5000, 0.5, 1.2, 4.0, 0.3, 0.8),
        ServiceReadFigure("history", 5000, 2.0, 6.5, 9.0, 1.5, 5.0),
    ]
    report.plans = [PlanText("balance (member 7)", "SELECT 1", "Index Scan using ix on lots")]
    report.memory = [WorkerMemory(11, 120.0, 130.0, 50.0), WorkerMemory(12, 140.0, 141.0, 70.0)]
    report.memory_at_start = [WorkerMemory(12, 90.0, 90.0)]
    return report


def test_targets_are_judged_on_the_right_figures() -> None:
    verdicts = {row.target: (row.measured, row.verdict) for row in targets(results())}
    throughput = verdicts["POS complete throughput >= 1.0 x pgbench TPC-B tps (peak vs peak)"]
    assert throughput == ("0.75 x (900/s vs 1200 tps)", "MISSED")
    assert verdicts["identify p99 <= 25 ms at half of peak"] == ("12.00 ms", "met")
    assert verdicts["preview p99 <= 25 ms at half of peak"] == ("30.00 ms", "MISSED")
    assert verdicts["complete p99 <= 50 ms at half of peak"] == ("40.00 ms", "met")
    assert verdicts["hot member >= 300 completes/s, no lost or doubled points"][1] == "met"
    assert verdicts["expiry sweep >= 10,000 lots/s"] == ("20,000 lots/s", "met")
    assert verdicts["balance read p99 <= 2 ms (service call)"] == ("1.20 ms", "met")
    assert verdicts["history read p99 <= 5 ms (service call)"] == ("6.50 ms", "MISSED")
    assert verdicts["<= 150 MB resident memory per worker (largest)"] == ("140.00 MB", "met")


def test_a_hot_member_whose_points_do_not_add_up_misses_its_target() -> None:
    report = results()
    assert report.hot_member is not None
    report.hot_member = HotMemberFigure(
        **{**report.hot_member.__dict__, "balance_after": 160}  # 10 points nobody reported
    )
    assert not report.hot_member.consistent
    row = next(row for row in targets(report) if row.target.startswith("hot member"))
    assert (row.measured, row.verdict) == ("320/s, ledger INCONSISTENT", "MISSED")


def test_figures_not_measured_say_so() -> None:
    machine = Machine(2, "cpu", 24.0, "15", "3.11", "Linux", "server")
    report = BenchResults("2025-01-01 00:00 UTC", "make bench", machine)
    report.failures["sweep"] = "RuntimeError: no disk"
    assert {row.verdict for row in targets(report)} == {"not measured"}
    assert not report.measured_anything
    report.sweep = SweepResult(10, 1.0, 10.0, "tiny")
    assert report.measured_anything
    text = render_markdown(report)
    assert "**sweep**: RuntimeError: no disk" in text
    assert "FAILED sweep: RuntimeError: no disk" in console_table(report)


def test_benchmarks_md_shows_every_figure_beside_pgbench() -> None:
    report = results()
    report.chart = "docs/bench/throughput.png"
    text = render_markdown(report)
    assert "Measured 2025-01-01 00:00 UTC by `make bench`" in text
    assert "| 16 | 900 | 6.7 | 20.0 | none | 1.85 | 1,200 | 30.0 | 0.75 |" in text
    assert "| 64 | 850 | 30.0 | 90.0 | 503: 2 | — | 1,000 | 120.0 | 0.85 |" in text
    assert "Peak: 900 completes/s at 16 clients; pgbench's peak 1200 tps at 16 clients" in text
    assert "![throughput and p99 against concurrency](docs/bench/throughput.png)" in text
    assert "| preview | 450/s | 10.0 | 30.0 | 60.0 | none |" in text
    assert "| no lost or doubled points | yes |" in text
    assert "**20,000 lots/s**" in text
    assert "```\nIndex Scan using ix on lots\n```" in text
    assert "| 12 | 140 | 141 | 70 | 90 |" in text
    table = console_table(report)
    assert "POS complete, C=16" in table
    assert re.search(r"^target: history read p99 <= 5 ms \(service call\) +MISSED", table, re.M)


def test_the_chart_asks_for_the_tools_it_is_drawn_with(tmp_path: Path) -> None:
    """matplotlib lives in ``make bench``'s own virtualenv (bench/chart.py says why)."""
    with pytest.raises(RuntimeError, match="make bench"):
        write_chart(results(), tmp_path / "chart.png", python=tmp_path / "no-python")
    assert not (tmp_path / "chart.png").exists()
