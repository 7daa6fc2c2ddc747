"""os-system: os.system() (glibc 2.36: posix_spawn, CLONE_VM|CLONE_VFORK); nothing to protect.

glibc's system() spawns /bin/sh with clone(CLONE_VM|CLONE_VFORK) through its
internal posix_spawn: the child runs in the parent's address space, never
holds its pages copy-on-write, and execs.  So the device stays coherent in
every configuration, with or without the library: there is no stale control
to show, and the test proves the library does not disturb this path (the
command runs, stderr stays empty).  Scenario: a registered 16-page buffer in
flight to the device; os.system() of a command that says "ran" through a
pipe and waits; meanwhile (the child alive, exec'd) a thread in the parent
writes generation 2 and reads the device: it must see 2, and as root the
parent kept its physical pages.
"""

import os

import sfharness as h


def spawn(cmd, fds):
    for fd in fds:
        os.set_inheritable(fd, True)
    return os.waitstatus_to_exitcode(os.system(cmd))


if __name__ == "__main__":
    always = {label: h.COHERENT for _, _, label in h.CONFIGS}
    h.main({"os.system": (lambda: h.exec_child_case(spawn), always)},
           "os.system (CLONE_VM|CLONE_VFORK): the command runs and the device stays coherent in every configuration")
