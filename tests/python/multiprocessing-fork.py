"""multiprocessing-fork: a multiprocessing worker started with the "fork" start method.

multiprocessing.get_context("fork").Process forks through os.fork(), so the
worker holds the registered buffer's pages copy-on-write.  The worker (the
child) checks it sees the fork-time generation 1, reports what it saw
through a multiprocessing Pipe and waits for the parent's "go"; the parent
writes generation 2 while the worker is alive, reads the device, then sends
"go"; the worker writes its private generation 3 and exits 0.  Protected
(library preloaded, mode copy or unset): the device sees 2, the parent kept
its physical pages.  Controls (mode off, no library): stale 1.  Always: the
worker saw 1 and exited 0, the parent keeps 2.
"""

import multiprocessing

import sfharness as h

case = None  # the worker finds the buffer here: it is a fork of the parent


def worker(conn):
    conn.send(case.child_view())
    if conn.recv() != "go":
        raise SystemExit(5)
    case.buf.fill(3)
    raise SystemExit(0 if case.buf.gen()[0] == 3 else 3)


def role_mp():
    global case
    case = h.Case()
    case.start()
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    p = ctx.Process(target=worker, args=(theirs,))
    p.start()
    theirs.close()
    try:
        seen = mine.recv()
    except EOFError:
        p.join()
        h.fail("the worker did not report (exit code %s)" % p.exitcode)
    case.parent_write()
    verdict = case.verdict()
    mine.send("go")
    p.join()
    mine.close()
    h.check(seen == 1, "worker: registered range holds generation %d, expected the fork-time 1" % seen)
    h.check(p.exitcode == 0, "worker failed with exit code %s" % p.exitcode)
    h.check(case.buf.gen()[0] == 2, "the parent lost its own write (worker's write leaked?)")
    return verdict


if __name__ == "__main__":
    h.main({"multiprocessing fork": (role_mp, None)},
           "multiprocessing (fork start method): protected with the library, stale without it; "
           "the worker sees the fork-time data")
