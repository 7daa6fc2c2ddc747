#!/bin/sh
# run.sh - how make check runs a Python scenario test (PY_LOG_COMPILER):
# with Debian's /usr/bin/python3 (or $PYTHON3), never the python3 first on
# PATH; -E -s -B: no PYTHON* variables, no user site, no bytecode files.
# SKIP (77) when there is no such interpreter or it is older than 3.11.
py=${PYTHON3:-/usr/bin/python3}
if [ ! -x "$py" ]; then
	echo "SKIP: no $py (the Python scenario tests need python3)"
	exit 77
fi
if ! "$py" -E -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
	echo "SKIP: $py is older than 3.11"
	exit 77
fi
exec "$py" -E -s -B "$@"
