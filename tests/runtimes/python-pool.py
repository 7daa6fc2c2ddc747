"""python-pool: a multiprocessing Pool (fork start method), 4 workers over 1 000 tasks.

The buffer is registered and held by the vmsplice device (sfharness.Case).
The pool forks its 4 workers; the parent then writes generation 2 while
they live, and maps 1 000 tasks over them (chunks of 10; a worker is
replaced after 10 chunks, so the pool forks again from its handler thread
while the work goes on).  Each task returns its square, the worker's pid
and the generation the worker sees in the registered buffer: the fork-time
1 or, for the replacements forked after the parent's write, 2, never a torn
mix.  Protected (library preloaded, mode copy or unset): the device sees the
parent's 2.  Controls (mode off, no library): stale 1.  Always: every result
right, nothing hangs (sfharness's watchdog and timeout).
"""

import multiprocessing
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import sfharness as h  # noqa: E402

TASKS = 1000
WORKERS = 4
case = None  # the workers find the buffer here: they are forks of the parent


def task(i):
    return i * i, os.getpid(), case.child_view()


def role_pool():
    global case
    case = h.Case()
    case.start()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(WORKERS, maxtasksperchild=10) as pool:
        case.parent_write()
        results = pool.map(task, range(TASKS), chunksize=10)
    verdict = case.verdict()
    h.check(len(results) == TASKS, "%d results for %d tasks" % (len(results), TASKS))
    bad = [i for i, r in enumerate(results) if r[0] != i * i]
    h.check(not bad, "%d wrong results, first at task %d" % (len(bad), bad[0] if bad else -1))
    gens = {r[2] for r in results}
    h.check(gens <= {1, 2}, "a worker saw generations %s in the registered buffer (1 or 2 expected)" % sorted(gens))
    pids = {r[1] for r in results}
    h.note("%d tasks, %d workers forked over the run, generations seen %s" % (TASKS, len(pids), sorted(gens)))
    return verdict


if __name__ == "__main__":
    h.main({"pool": (role_pool, None)},
           "multiprocessing Pool (fork): %d workers over %d tasks, results right; registered buffer "
           "protected with the library, stale without it" % (WORKERS, TASKS))
