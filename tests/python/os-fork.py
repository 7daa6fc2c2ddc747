"""os-fork: os.fork() in a Python process with a registered buffer in flight to the device.

The Python twin of tests/copy-anon: a 16-page anonymous buffer is filled
with generation 1, registered through ctypes, its pages vmsplice()d into the
"device" pipes; os.fork().  The child checks it sees generation 1 and, as in
the C harness, tells the parent through a pipe and waits; the parent writes
generation 2 while the child still maps the pages, lets the child write its
private generation 3, reaps it, and reads the device.  Protected (library
preloaded, mode copy or unset): the device sees 2 and, as root, the parent
kept its physical pages.  Controls (mode off, no library): the device sees
the stale 1.  In every configuration the child sees 1 and the parent keeps 2.
"""

import os

import sfharness as h


def role_fork():
    c = h.Case()
    c.start()
    checked_r, checked_w = os.pipe()
    wrote_r, wrote_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 2
        try:
            g = c.child_view()
            if g != 1:
                print("child: registered range holds generation %d, expected the fork-time 1" % g, flush=True)
            elif os.write(checked_w, b"c") == 1 and os.read(wrote_r, 1) == b"w":
                c.buf.fill(3)
                status = 0 if c.buf.gen()[0] == 3 else 3
            else:
                status = 5
        finally:
            os._exit(status)
    # only the child writes "checked" and reads "wrote": a dead child then reads as EOF
    os.close(checked_w)
    os.close(wrote_r)
    if os.read(checked_r, 1) != b"c":
        h.fail("handshake: the child did not check in (status %d)" % os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    c.parent_write()
    os.write(wrote_w, b"w")
    st = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os.close(checked_r)
    os.close(wrote_w)
    h.check(st == 0, "child failed with status %d" % st)
    return c.verdict()


if __name__ == "__main__":
    h.main({"os.fork": (role_fork, None)},
           "os.fork: protected with the library, stale without it; the child sees the fork-time data")
