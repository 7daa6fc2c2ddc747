"""sfharness - the C test harness (tests/harness.c) for Python scenario tests.

A registered buffer lives in the Python process itself: an anonymous private
page-aligned mapping (mmap), registered through ctypes with
safefork_register() when the library is preloaded (a no-op when it is not,
so the same script is its own control).  The "device" is a set of pipes into
which the buffer's pages were vmsplice()d: the pipes hold references to the
physical pages, as a DMA registration would, without the kernel's pin-aware
copy-on-write.  After a fork the parent writes generation 2 while the child
still exists; reading the pipes then shows whether the device sees the
parent's new data (coherent) or the fork-time generation 1 (stale).  As root,
/proc/self/pagemap PFNs confirm that the parent kept its physical pages.

A test script calls protect_and_control(roles) with no arguments: each role
is re-run as "script role" in four configurations (library preloaded with
SAFEFORK_MODE=copy, with the mode unset, with SAFEFORK_MODE=off, and no
library) and must end with the expected verdict and an empty stderr.  Exit
status: 0 PASS, 77 SKIP, 1 FAIL, with a one-line verdict last on stdout.
"""

import ctypes
import fcntl
import mmap
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
from array import array

PASS, FAIL, SKIP = 0, 1, 77
COHERENT, STALE = 10, 11
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.vmsplice.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)
_libc.vmsplice.restype = ctypes.c_ssize_t
SPLICE_F_NONBLOCK = 2


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


# ------------------------------------------------------------------ verdicts

def _report(tag, msg):
    print("%s: %s" % (tag, msg), flush=True)


def fail(msg):
    _report("FAIL", msg)
    sys.exit(FAIL)


def skip(msg):
    _report("SKIP", msg)
    sys.exit(SKIP)


def note(msg):
    _report("note", msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def watchdog(seconds):
    """Fail ("deadlock") if this process still runs after this many seconds."""
    def fired(sig, frame):
        os.write(1, b"FAIL: deadlock (watchdog)\n")
        os._exit(FAIL)
    signal.signal(signal.SIGALRM, fired)
    signal.alarm(seconds)


# ------------------------------------------------------------------ the library

def _sym(name):
    """The library's function when it is loaded (preloaded: in the global scope), else None."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except AttributeError:
        return None


def lib_loaded():
    return _sym("safefork_register") is not None


def register(addr, length, flags=0):
    f = _sym("safefork_register")
    if f is None:
        return
    f.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)
    f.restype = ctypes.c_int
    if f(addr, length, flags) != 0:
        fail("safefork_register: %s" % os.strerror(ctypes.get_errno()))


def unregister(addr, length):
    f = _sym("safefork_unregister")
    if f is None:
        return
    f.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    f.restype = ctypes.c_int
    if f(addr, length) != 0:
        fail("safefork_unregister: %s" % os.strerror(ctypes.get_errno()))


# ------------------------------------------------------------------ content

_low = {}


def pattern(length, gen):
    """What t_fill(buf, length, gen) writes: word i = gen << 32 | (i * 2654435761 mod 2^32)."""
    words = length // 8
    if words not in _low:
        _low[words] = array("Q", ((i * 2654435761) & 0xFFFFFFFF for i in range(words)))
    high = gen << 32
    data = array("Q", (high | w for w in _low[words])).tobytes()
    assert sys.byteorder == "little"  # the C harness's words, as they lie in memory
    return data + bytes([gen & 0xFF]) * (length - words * 8)


def gen_of(data):
    """The generation found at every word (as t_gen_of), or (-1, first bad offset)."""
    gen = struct.unpack_from("<Q", data)[0] >> 32 if len(data) >= 8 else data[0]
    want = pattern(len(data), gen)
    if data == want:
        return gen, None
    bad = next(i for i in range(len(data)) if data[i] != want[i])
    return -1, bad // 8 * 8


class Buffer:
    """Anonymous private page-aligned memory, as t_map()."""

    def __init__(self, length):
        self.len = length
        self.map = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        assert self.addr % PAGE == 0

    def fill(self, gen):
        self.map[:] = pattern(self.len, gen)

    def gen(self):
        return gen_of(self.map[:])


# ------------------------------------------------------------------ physical pages

def pfn(addr):
    """PFN of the page holding addr; 0 if absent or hidden (not root)."""
    with open("/proc/self/pagemap", "rb", buffering=0) as f:
        e = struct.unpack("<Q", os.pread(f.fileno(), 8, addr // PAGE * 8))[0]
    return e & ((1 << 55) - 1) if (e >> 63) & 1 else 0


def pfns(buf):
    return [pfn(buf.addr + i) for i in range(0, buf.len, PAGE)]


# ------------------------------------------------------------------ the device

class Device:
    """vmsplice()d pipes holding references to the pages of a buffer (t_dev_attach)."""

    def __init__(self, buf):
        self.len = buf.len
        self.pipes = []
        done = 0
        while done < buf.len:
            r, w = os.pipe2(os.O_CLOEXEC)
            self.pipes.append((r, w))
            try:
                cap = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
            except OSError:
                cap = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
            chunk = min(buf.len - done, cap)
            put = 0
            while put < chunk:
                iov = iovec(buf.addr + done + put, chunk - put)
                n = _libc.vmsplice(w, ctypes.byref(iov), 1, SPLICE_F_NONBLOCK)
                if n <= 0:
                    fail("vmsplice: %s" % (os.strerror(ctypes.get_errno()) if n < 0 else "no progress"))
                put += n
            done += chunk

    def read(self):
        """What the device now has in those pages (what a DMA read would send)."""
        out = bytearray()
        for r, _ in self.pipes:
            avail = array("i", [0])
            fcntl.ioctl(r, termios.FIONREAD, avail, True)
            want = avail[0]
            while want:
                chunk = os.read(r, want)
                if not chunk:
                    break
                out += chunk
                want -= len(chunk)
        check(len(out) == self.len, "device: read %d of %d bytes" % (len(out), self.len))
        return bytes(out)

    def close(self):
        for r, w in self.pipes:
            os.close(r)
            os.close(w)
        self.pipes = []


# ------------------------------------------------------------------ the scenario

class Case:
    """The standard scenario of t_case_run, in pieces a test calls around its own fork.

    start(): fill generation 1, register, note the PFNs, attach the device.
    parent_write(): the parent's generation 2 (while the child still exists).
    verdict(): read the device: COHERENT (it sees 2; as root the parent kept
    its PFNs) or STALE (it sees the fork-time 1, or the child's 3); fails on
    anything else.
    """

    def __init__(self, npages=16):
        self.buf = Buffer(npages * PAGE)

    def start(self):
        expect = os.environ.get("SF_T_EXPECT_LIB")
        if expect is not None:
            check(lib_loaded() == (expect == "1"),
                  "the library is %sloaded, expected %s" % ("" if lib_loaded() else "not ",
                                                             "loaded" if expect == "1" else "absent"))
        self.buf.fill(1)
        register(self.buf.addr, self.buf.len)
        self.before = pfns(self.buf)
        self.see_pfns = all(self.before)
        self.dev = Device(self.buf)

    def child_view(self):
        """In a forked child: the generation it sees (the fork-time 1 is right)."""
        return self.buf.gen()[0]

    def parent_write(self):
        self.buf.fill(2)

    def verdict(self):
        check(self.buf.gen()[0] == 2, "the parent lost its own write (child's write leaked?)")
        same = pfns(self.buf) == self.before
        g, _ = gen_of(self.dev.read())
        self.dev.close()
        unregister(self.buf.addr, self.buf.len)
        hidden = "PFNs hidden (not root)"
        if g == 2:
            check(not self.see_pfns or same, "device coherent but the parent's PFNs changed")
            note("device sees the parent's new data; %s" % ("parent kept its physical pages" if self.see_pfns else hidden))
            return COHERENT
        if g == 1:
            check(not self.see_pfns or not same, "device stale although the parent kept its PFNs")
            note("device sees STALE pre-fork data; %s" % ("parent moved to new physical pages" if self.see_pfns else hidden))
            return STALE
        if g == 3:
            check(not self.see_pfns or not same, "device sees the child's data although the parent kept its PFNs")
            note("device sees the CHILD's data: what it receives would be lost to the parent")
            return STALE
        fail("device sees neither generation (torn: %d)" % g)


# ------------------------------------------------------------------ configurations

CONFIGS = [  # (preload, SAFEFORK_MODE, label)
    (True, "copy", "copy"),
    (True, None, "preloaded, mode unset"),
    (True, "off", "off"),
    (False, None, "without the library"),
]


def lib_path():
    p = os.environ.get("SAFEFORK_LIB")
    if not p:
        fail("SAFEFORK_LIB is not set (run the tests through make check)")
    return p


def sanitized():
    return bool(os.environ.get("T_PRELOAD_PREFIX"))


def role_env(preload, mode):
    """The environment of a role: as t_run, the sanitizer runtime first in LD_PRELOAD when there is one."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SAFEFORK_MODE")}
    libs = [os.environ.get("T_PRELOAD_PREFIX", "")] + ([lib_path()] if preload else [])
    libs = [p for p in libs if p]
    if libs:
        env["LD_PRELOAD"] = " ".join(libs)
    if mode is not None:
        env["SAFEFORK_MODE"] = mode
    env["SF_T_EXPECT_LIB"] = "1" if preload else "0"
    return env


PYTHON_FLAGS = ["-E", "-s", "-B"]  # no PYTHON* variables, no user site, no bytecode files


def run_python(args, preload, mode, timeout=20):
    """Run the interpreter with args in a configuration; returns (status, stdout, stderr)."""
    try:
        p = subprocess.run([sys.executable] + PYTHON_FLAGS + args, env=role_env(preload, mode),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return -1000, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def preload_possible():
    """Skip when the sanitizer runtime cannot be preloaded into the interpreter (fail without a sanitizer)."""
    probe = "import ctypes, sys; sys.exit(0 if hasattr(ctypes.CDLL(None), 'safefork_register') else 3)"
    st, out, err = run_python(["-c", probe], True, "copy")
    if st == 0 and not err:
        return
    why = (err.strip().splitlines() or ["the library is not loaded" if st == 3 else "exit status %d" % st])[0]
    if sanitized():
        skip("this sanitizer build cannot be preloaded into %s: %s" % (sys.executable, why))
    fail("preloading the library into %s fails: %s" % (sys.executable, why))


def expect(script, role, preload, mode, label, want):
    """Run role in one configuration and check its verdict and its silence; True if as expected."""
    st, out, err = run_python([script, role], preload, mode)
    for line in out.splitlines():
        print("  [%s] %s" % (label, line))
    names = {COHERENT: "coherent", STALE: "STALE"}
    ok = True
    if st != want:
        print("FAIL: %s [%s]: got %s, expected %s" % (role, label, names.get(st, "a failure (status %d)" % st),
                                                      names[want]))
        ok = False
    if err:
        print("FAIL: %s [%s]: stderr not empty: %r" % (role, label, err[:2000]))
        ok = False
    if ok:
        note("%s [%s]: %s as expected, stderr empty" % (role, label, names[want]))
    sys.stdout.flush()
    return ok


def main(roles, what):
    """roles: {name: (function returning COHERENT/STALE, {label: expected verdict} or None for protect-and-control)}.

    Called as "script role": run that role (with a watchdog).  Called with
    no argument: check every role in the four configurations.
    """
    if len(sys.argv) > 1:
        watchdog(15)
        fn = roles[sys.argv[1]][0]
        sys.exit(fn())
    if not os.path.exists("/proc/self/pagemap"):
        skip("no /proc/self/pagemap")
    preload_possible()
    script = os.path.abspath(sys.argv[0])
    good = True
    for name, (fn, wants) in roles.items():
        for preload, mode, label in CONFIGS:
            want = wants[label] if wants else (COHERENT if preload and mode != "off" else STALE)
            good &= expect(script, name, preload, mode, label, want)
    if not good:
        print("FAIL: %s: not as expected in some configuration (see above)" % ", ".join(roles), flush=True)
        sys.exit(FAIL)
    print("PASS: %s" % what, flush=True)
    sys.exit(PASS)


# ------------------------------------------------------------------ exec'd children

def exec_child_case(spawn):
    """The scenario for a child that execs: spawn(cmd, fds) runs /bin/sh -c cmd
    with the descriptors fds open in it and returns its exit status when it
    has ended (blocking, like subprocess.run and os.system).  While the
    command runs (it has exec'd: it says "ran" on one pipe, then waits for a
    "go" line on another), a thread in the parent writes generation 2 and
    reads the device, then lets it finish.  Returns COHERENT or STALE.
    """
    c = Case()
    c.start()
    ran_r, ran_w = os.pipe()
    go_r, go_w = os.pipe()
    result = {}

    def parent_side():
        try:
            said = os.read(ran_r, 4)
            result["child said"] = said
            if said == b"ran\n":
                c.parent_write()
                result["verdict"] = c.verdict()
        except SystemExit as e:  # fail() in the thread: the FAIL line is out, the role fails
            result["exit"] = e.code
        finally:
            os.write(go_w, b"go\n")

    t = threading.Thread(target=parent_side)
    t.start()
    cmd = 'echo ran >&%d && read go <&%d && [ "$go" = go ]' % (ran_w, go_r)
    st = spawn(cmd, (ran_w, go_r))
    for fd in (ran_w, go_r):  # a command that died early then reads as EOF in the thread
        os.close(fd)
    t.join()
    os.close(ran_r)
    os.close(go_w)
    if "exit" in result:
        raise SystemExit(result["exit"])
    check(result.get("child said") == b"ran\n", "the command did not run (said %r, status %d)"
          % (result.get("child said"), st))
    check(st == 0, "the command failed with status %d" % st)
    check(c.buf.gen()[0] == 2, "the parent lost its own write")
    return result["verdict"]
