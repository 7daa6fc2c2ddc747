"""subprocess-run: subprocess.run() without preexec_fn takes the vfork path; nothing to protect.

Python 3.11's _posixsubprocess uses vfork() (CLONE_VM|CLONE_VFORK) when no
preexec_fn, user or group change is asked for: the child runs in the
parent's address space, never holds its pages copy-on-write, and execs.  So
the device stays coherent in every configuration, with or without the
library: there is no stale control to show, and the test proves the
library neither breaks nor slows this path (the command runs, stderr stays
empty).  Scenario: a registered 16-page buffer in flight to the device;
subprocess.run() of /bin/sh, which says "ran" through a pipe and waits;
meanwhile (the child alive, exec'd) a thread in the parent writes
generation 2 and reads the device: it must see 2, and as root the parent
kept its physical pages.
"""

import subprocess

import sfharness as h


def spawn(cmd, fds):
    assert subprocess._USE_VFORK  # the path this test is about (3.11+, unless disabled)
    return subprocess.run(["/bin/sh", "-c", cmd], pass_fds=fds).returncode


if __name__ == "__main__":
    always = {label: h.COHERENT for _, _, label in h.CONFIGS}
    h.main({"subprocess.run": (lambda: h.exec_child_case(spawn), always)},
           "subprocess.run (vfork path): the command runs and the device stays coherent in every configuration")
