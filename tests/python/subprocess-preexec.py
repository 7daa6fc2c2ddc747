"""subprocess-preexec: subprocess.run(..., preexec_fn=...) takes the fork() path.

With a preexec_fn, _posixsubprocess fork()s (no vfork: the child runs Python
code before exec), so the child shares the registered buffer's pages
copy-on-write until it execs.  Popen blocks until the child has exec'd, so
the parent's side runs in a thread: preexec_fn (in the child) checks it sees
the fork-time generation 1, reports what it saw through a pipe and waits for
a "go" byte; the parent's thread waits for that report, writes generation 2
while the child still maps the pages, reads the device, records the verdict,
then sends "go".  The child writes its private generation 3 and execs
/bin/sh, which prints "ran".  Protected (library preloaded, mode copy or
unset): the device sees 2, the parent kept its physical pages.  Controls
(mode off, no library): stale 1.  Always: the child saw 1, the command ran,
the parent keeps 2.
"""

import os
import subprocess
import threading

import sfharness as h


def role_preexec():
    c = h.Case()
    c.start()
    checked_r, checked_w = os.pipe()
    go_r, go_w = os.pipe()
    result = {}

    def in_child():
        # The child's view: report the generation seen (a byte), then wait for the parent's write.
        os.write(checked_w, bytes([c.child_view() & 0xFF]))
        if os.read(go_r, 1) != b"g":
            os._exit(5)
        c.buf.fill(3)
        if c.buf.gen()[0] != 3:
            os._exit(3)

    def parent_side():
        try:
            seen = os.read(checked_r, 1)
            result["child saw"] = seen[0] if seen else None
            if seen:
                c.parent_write()
                result["verdict"] = c.verdict()
        except SystemExit as e:  # h.fail() in the thread: the FAIL line is out, the role fails
            result["exit"] = e.code
        finally:
            os.write(go_w, b"g")

    t = threading.Thread(target=parent_side)
    t.start()
    p = subprocess.run(["/bin/sh", "-c", "echo ran"], preexec_fn=in_child, stdout=subprocess.PIPE)
    for fd in (checked_w, go_r):  # a child that died early then reads as EOF in the thread
        os.close(fd)
    t.join()
    os.close(checked_r)
    os.close(go_w)
    if "exit" in result:
        raise SystemExit(result["exit"])
    h.check(result.get("child saw") == 1, "child: registered range holds generation %s, expected the fork-time 1"
            % result.get("child saw"))
    h.check(p.returncode == 0 and p.stdout == b"ran\n", "the command did not run: status %d, output %r"
            % (p.returncode, p.stdout))
    h.check(c.buf.gen()[0] == 2, "the parent lost its own write (child's write leaked?)")
    return result["verdict"]


if __name__ == "__main__":
    h.main({"subprocess preexec_fn": (role_preexec, None)},
           "subprocess with preexec_fn (fork path): protected with the library, stale without it; "
           "the child sees the fork-time data")
