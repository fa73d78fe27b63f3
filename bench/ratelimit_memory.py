"""Memory and per-call cost of access control + rate limiting under a million distinct clients.

Drives :meth:`AccessTable.lookup` and :meth:`RateLimiter.check` as the NTP
server does for every packet, on simulated time: one new client (IPv4 or
IPv6, alternately) every millisecond sends an ``iburst``-like first request,
a client seen a little earlier comes back, and one address floods. Prints
peak RSS (``ru_maxrss``) and current RSS at 0, 100k, 500k and 1M distinct
addresses, then the cost per call of the hot paths. Memory should stay flat
once the limiter's table (65,536 clients) and the lookup cache are full.

Run: ``python bench/ratelimit_memory.py [--table compiled|python]`` (about half
a minute each). The default table is the one the daemon uses: the compiled
one (:class:`appliance.io.fastpath.FastRateLimiter`) where it was built.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import resource
import sys
import time
from collections.abc import Callable

from appliance.config.model import Discard, Location, RestrictRule
from appliance.io import fastpath
from appliance.ntp.access import KOD, LIMITED, AccessTable
from appliance.ntp.ratelimit import RateLimiter
from appliance.timebase import NS_PER_S

HERE = Location("bench", 1)
POOL = frozenset("kod notrap nomodify nopeer noquery limited".split())
RULES = [
    RestrictRule(None, 4, POOL, HERE),
    RestrictRule(None, 6, POOL, HERE),
    RestrictRule(ipaddress.ip_network("127.0.0.1/32"), 4, frozenset(), HERE),
    RestrictRule(ipaddress.ip_network("::1/128"), 6, frozenset(), HERE),
    RestrictRule(ipaddress.ip_network("192.168.0.0/24"), 4, frozenset({"nomodify", "notrap"}), HERE),
]
CHECKPOINTS = (0, 100_000, 500_000, 1_000_000)
CHUNK = 10_000
T0 = 1_700_000_000 * NS_PER_S
STEP_NS = NS_PER_S // 1000  # a new client every millisecond
FLOODER = "198.51.100.66"


def address(n: int) -> str:
    """The n-th distinct client address: even n IPv4, odd n IPv6."""
    if n % 2 == 0:
        return f"{(n >> 24 & 0x7F) + 1}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    return f"2001:db8:{n >> 32 & 0xFFFF:x}:{n >> 16 & 0xFFFF:x}::{n & 0xFFFF:x}"


def rss_kib() -> tuple[int, int]:
    """(peak RSS, current RSS) in KiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        peak //= 1024
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        current = -1
    return peak, current


def per_call_ns(fn: Callable[[int], object], n: int = 200_000) -> float:
    """Best of three: ns per call of fn(i)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", choices=("compiled", "python"), default="compiled" if fastpath.available() else "python")
    args = p.parse_args()
    if args.table == "compiled" and not fastpath.available():
        sys.exit("ratelimit_memory: the compiled data plane is not built here")
    table = AccessTable.from_rules(RULES)
    limiter = fastpath.FastRateLimiter(Discard()) if args.table == "compiled" else RateLimiter(Discard())
    print(f"rate-limiter table: {args.table} ({type(limiter).__name__}, {limiter.slots} slots)")
    busy_ns = 0
    calls = 0
    t = T0
    print(f"{'addresses':>10} {'peak RSS KiB':>13} {'RSS KiB':>9} {'clients':>8} {'evictions':>10} {'ns/packet':>10}")
    peak, current = rss_kib()
    print(f"{0:>10} {peak:>13} {current:>9} {limiter.clients():>8} {limiter.evictions:>10} {'-':>10}")
    done = 0
    for checkpoint in CHECKPOINTS[1:]:
        while done < checkpoint:
            # packets of this chunk, made before the clock starts: (address, source port, time)
            packets = []
            for n in range(done, done + CHUNK):
                t += STEP_NS
                packets.append((address(n), 123 if n % 3 else 40000 + n % 1000, t))
                if n >= 5000:  # a client from five seconds ago polls again
                    packets.append((address(n - 5000), 123, t + 1))
                packets.append((FLOODER, 40001, t + 2))
            start = time.perf_counter_ns()
            for ip, port, now in packets:
                flags = table.lookup(ip, port).flags
                if flags & LIMITED:
                    limiter.check(ip, now, bool(flags & KOD))
            busy_ns += time.perf_counter_ns() - start
            calls += len(packets)
            done += CHUNK
        peak, current = rss_kib()
        print(
            f"{done:>10} {peak:>13} {current:>9} {limiter.clients():>8} {limiter.evictions:>10}"
            f" {busy_ns / calls:>10.0f}"
        )
    print(
        f"counters: passed={limiter.passed} limited={limiter.limited} kod_sent={limiter.kod_sent}"
        f" kod_suppressed={limiter.kod_suppressed} evictions={limiter.evictions}"
    )

    print("\nper call, hot paths (best of 3, loop overhead included):")
    hit4, hit6 = "203.0.113.5", "2001:db8::1234:5678"
    table.lookup(hit4)
    table.lookup(hit6)
    print(f"  AccessTable.lookup, cached IPv4      {per_call_ns(lambda i: table.lookup(hit4, 123)):6.0f} ns")
    print(f"  AccessTable.lookup, cached IPv6      {per_call_ns(lambda i: table.lookup(hit6, 123)):6.0f} ns")
    fresh = AccessTable.from_rules(RULES, cache_size=1)
    print(f"  AccessTable.lookup, uncached IPv4    {per_call_ns(lambda i: fresh.lookup(address(2 * i))):6.0f} ns")
    print(f"  (address() formatting alone)         {per_call_ns(lambda i: address(2 * i)):6.0f} ns")
    tick = itertools.count(1)  # time only moves forward, and "new" keys are new in every round
    far = t + 3600 * NS_PER_S
    passes = per_call_ns(lambda i: limiter.check(hit4, far + next(tick) * 10 * NS_PER_S))
    far += 10**9 * NS_PER_S
    flooded = per_call_ns(lambda i: limiter.check(FLOODER, far + next(tick), True))
    newcomer = per_call_ns(lambda i: limiter.check(address(2_000_000 + next(tick)), far + next(tick)))
    overhead = per_call_ns(lambda i: (address(2_000_000 + next(tick)), far + next(tick)))
    print(f"  RateLimiter.check, known, passes     {passes:6.0f} ns")
    print(f"  RateLimiter.check, known, limited    {flooded:6.0f} ns")
    print(f"  RateLimiter.check, new client        {newcomer:6.0f} ns")
    print(f"  (its key and time alone)             {overhead:6.0f} ns")


if __name__ == "__main__":
    main()
