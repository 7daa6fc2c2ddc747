"""sitecustomize for make check-python: a registered buffer in every Python process.

tests/python/check-python.sh puts this directory on PYTHONPATH, so every
interpreter CPython's test suite starts (the regrtest workers, the children
of subprocess, multiprocessing and os.fork tests) maps 1 MiB of anonymous
private page-aligned memory, touches every page, and registers it with
safefork_register() when the library is preloaded: each of their forks then
has a range to protect.  Without the library (the baseline run) nothing is
registered but the same work is done, so the two runs differ by the library
alone.  It prints nothing and keeps no descriptor open; what happened is left
in sitecustomize.registered / sitecustomize.error for check-python.sh to
verify.  (It shadows Debian's own sitecustomize, which only installs apport
when that is present.)
"""

registered = False
error = None
try:
    import ctypes as _ctypes
    import mmap as _mmap

    _LEN = 1 << 20
    _buf = _mmap.mmap(-1, _LEN, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS,
                      prot=_mmap.PROT_READ | _mmap.PROT_WRITE)
    _buf[:] = b"\xa5" * _LEN
    _addr = _ctypes.addressof(_ctypes.c_char.from_buffer(_buf))
    _register = getattr(_ctypes.CDLL(None, use_errno=True), "safefork_register", None)
    if _register is not None:
        _register.argtypes = (_ctypes.c_void_p, _ctypes.c_size_t, _ctypes.c_uint)
        _register.restype = _ctypes.c_int
        if _register(_addr, _LEN, 0) != 0:
            raise OSError(_ctypes.get_errno(), "safefork_register")
        registered = True
except Exception as _e:  # never print: the tests compare output
    error = repr(_e)
