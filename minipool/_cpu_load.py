"""How many cores are free for minipool's threads right now.

Why: an OpenMP parallel region ends only when every thread of its team has
finished.  When another process keeps one of two cores busy, the operating
system deschedules one of our two threads for whole time slices, and each of
the dozens of parallel regions of a training step waits for it: LeNet-5
training kept 20% of its quiet speed that way (one thread alone keeps ~75%).
So the kernels ask :func:`free_threads` how many threads can run at once and
size their team from it; results do not depend on the team size (every kernel
is bit-identical for any thread count), only the time does.

How: every ``SAMPLE_SECONDS`` (checked when a kernel asks, never by a
background thread) we read the busy time of the CPUs this process may run on
(``/proc/stat``, Linux) and subtract this process's own CPU time: what is left
is the other processes' load, in cores.  A team shrinks when the free cores
fall 0.6 below its size and grows back when they rise 0.6 above: a band, so
that a load near the middle does not make it flap.  Where ``/proc/stat`` is not
readable the team is never shrunk.

A shrunk team leaves the share of the busy core that the scheduler would give
our second thread (a third of a core on 2 cores with one busy: 4/3 of a core
for our two threads) unused.  Long conv2d calls take it back: under load they
keep the full team on ``minipool/_kernels/load_team.h``, a team whose caller
waits only for chunks a thread has claimed, never for a descheduled thread to
check in (``minipool._config.kernel_team``).  Short calls stay on one thread:
there a time slice of waiting for a chunk would cost more than the thread adds.
"""
import os
import threading
import time

__all__ = ["free_threads", "other_load", "set_adaptive", "adaptive"]

SAMPLE_SECONDS = 0.25
BAND = 0.6


def _our_cpus():
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


def _busy_ticks(cpus):
    """Clock ticks the given CPUs spent busy since boot (None when unreadable)."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None
    busy = 0
    for line in lines:
        if not line.startswith(b"cpu") or line[3:4] == b" ":
            continue  # the first line is the sum over all CPUs
        fields = line.split()
        try:
            if int(fields[0][3:]) not in cpus:
                continue
            # user nice system idle iowait irq softirq steal: all but idle and iowait
            # (steal counts as busy: the hypervisor gave that time to someone else)
            user, nice, system, _, _, irq, softirq, steal = (int(v) for v in fields[1:9])
        except (ValueError, IndexError):
            return None
        busy += user + nice + system + irq + softirq + steal
    return busy


class _Monitor:
    def __init__(self):
        self.cpus = _our_cpus()
        try:
            self.tick = float(os.sysconf("SC_CLK_TCK"))
        except (AttributeError, ValueError, OSError):
            self.tick = 100.0
        self.enabled = os.environ.get("MINIPOOL_ADAPTIVE_THREADS", "1").strip() not in ("0", "false", "no")
        self.lock = threading.Lock()
        self.readable = _busy_ticks(self.cpus) is not None
        self.next_sample = 0.0
        self.last = None  # (wall seconds, busy ticks, this process's CPU seconds)
        self.others = 0.0  # cores' worth of CPU time other processes used in the last interval
        self.team = len(self.cpus)

    def sample(self, now):
        busy = _busy_ticks(self.cpus)
        if busy is None:
            self.readable = False
            return
        current = (now, busy, time.process_time())
        if self.last is not None and now > self.last[0]:
            wall = now - self.last[0]
            total = (busy - self.last[1]) / self.tick
            ours = current[2] - self.last[2]
            self.others = min(max((total - ours) / wall, 0.0), float(len(self.cpus)))
            self.team = _team_size(self.team, len(self.cpus) - self.others, len(self.cpus))
        self.last = current

    def free_threads(self):
        if not (self.enabled and self.readable):
            return len(self.cpus)
        now = time.monotonic()
        if now >= self.next_sample:
            with self.lock:
                if now >= self.next_sample:
                    self.next_sample = now + SAMPLE_SECONDS
                    self.sample(now)
        return self.team


def _team_size(team, free, cpus):
    """The team for ``free`` cores, moving from ``team`` only past the hysteresis band.

    >>> _team_size(2, 1.0, 2), _team_size(2, 1.5, 2), _team_size(1, 1.5, 2), _team_size(1, 1.9, 2)
    (1, 2, 1, 2)
    """
    while team > 1 and free <= team - BAND:
        team -= 1
    while team < cpus and free >= team + BAND:
        team += 1
    return team


_monitor = _Monitor()


def free_threads():
    """How many threads can run at once on this process's CPUs, given the other processes' load.

    >>> 1 <= free_threads() <= len(_our_cpus())
    True
    """
    return _monitor.free_threads()


def other_load():
    """Cores' worth of CPU time other processes used over the last sample (0.0 if unknown)."""
    return _monitor.others


def set_adaptive(enabled):
    """Turn the load-adaptive team size on (the default) or off (always the full count)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_adaptive_threads: enabled must be True or False, got {enabled!r}")
    _monitor.enabled = enabled


def adaptive():
    return _monitor.enabled and _monitor.readable
