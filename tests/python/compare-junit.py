"""compare-junit: test-case outcomes in regrtest --junit-xml files, baseline against shim.

A configuration's results are one or more junit files, comma-separated (a
test file repeated after it did not complete adds one).  Each <testsuite>
is one test file; it is named by the "test_*" module most of its test case
ids name (test_fork1 runs test.fork_wait too).

compare-junit.py BASELINE SHIM
    The counts of each configuration, then one line per test case whose
    outcome (passed, skipped, failure, error; missing: its file did not
    report) differs: "  differs: ID [test_file]: baseline X, shim Y".
    Exit 1 if any differs.

compare-junit.py --lost RESULTS test_a test_b ...
    The named test files with no results (a hang killed by --timeout, a crash).

compare-junit.py --reruns BASELINE SHIM REBASE RESHIM
    For each test case that differs between BASELINE and SHIM, REBASE and
    RESHIM hold it run many times in each configuration.  It is explained
    (a flaky test, not the library) only when the baseline re-runs show the
    outcome the shimmed run had; otherwise it is reproduced under the library
    alone, or not reproduced at all (timing-dependent): exit 1 unless every
    difference is explained.
"""

import collections
import sys
import xml.etree.ElementTree as ET


def suites(paths):
    """(test file, [(id, outcome)]) for every <testsuite> of the comma-separated files."""
    for path in paths.split(","):
        for suite in ET.parse(path).getroot().iter("testsuite"):
            got = []
            for tc in suite.iter("testcase"):
                kinds = {k.tag for k in tc}
                got.append((tc.get("name"), "error" if "error" in kinds else "failure" if "failure" in kinds
                            else "skipped" if "skipped" in kinds else "passed"))
            mods = collections.Counter(n.split(".")[1] for n, _ in got if n.count(".") >= 1)
            named = [m for m, _ in mods.most_common() if m.startswith("test_")]
            yield (named or [m for m, _ in mods.most_common()] or ["?"])[0], got


def outcomes(paths):
    """{id: (test file, outcome)}; a later file's result for an id replaces an earlier one."""
    res = {}
    for mod, got in suites(paths):
        for name, outcome in got:
            res[name] = (mod, outcome)
    return res


def counts(res):
    c = collections.Counter(o for _, o in res.values())
    return "%d test cases: %s" % (len(res), ", ".join("%d %s" % (c[k], k) for k in ("passed", "skipped", "failure", "error")))


def differing(base, shim):
    return sorted(n for n in set(base) | set(shim)
                  if base.get(n, (None, "missing"))[1] != shim.get(n, (None, "missing"))[1])


def compare(a, b):
    base, shim = outcomes(a), outcomes(b)
    print("baseline: " + counts(base))
    print("shim:     " + counts(shim))
    diff = differing(base, shim)
    for n in diff:
        mod = (base.get(n) or shim.get(n))[0]
        print("  differs: %s [%s]: baseline %s, shim %s"
              % (n, mod, base.get(n, (mod, "missing"))[1], shim.get(n, (mod, "missing"))[1]))
    return 1 if diff else 0


def lost(paths, wanted):
    have = {mod for mod, got in suites(paths) if got}
    print(" ".join(m for m in wanted if m not in have))
    return 0


def reruns(a, b, ra, rb):
    base, shim = outcomes(a), outcomes(b)
    seen = {}
    for which, paths in ((0, ra), (1, rb)):
        for _, got in suites(paths):
            for name, outcome in got:
                seen.setdefault(name, (collections.Counter(), collections.Counter()))[which][outcome] += 1
    unexplained = 0
    for name in differing(base, shim):
        was = shim.get(name, (None, "missing"))[1]
        rebase, reshim = seen.get(name, (collections.Counter(), collections.Counter()))
        if rebase[was]:
            verdict = ("the baseline shows it too: a flaky test, not the library" if was != "passed"
                       else "passes under the library: the baseline's flaky failure")
        elif reshim[was]:
            verdict = "REPRODUCED under the library only"
        else:
            verdict = "NOT REPRODUCED in either configuration (timing-dependent?), unexplained"
        print("  %s: shim run %s, baseline run %s; re-runs: baseline %s, shim %s: %s"
              % (name, was, base.get(name, (None, "missing"))[1], dict(rebase), dict(reshim), verdict))
        unexplained += not rebase[was]
    return 1 if unexplained else 0


if __name__ == "__main__":
    if sys.argv[1] == "--reruns":
        sys.exit(reruns(*sys.argv[2:6]))
    if sys.argv[1] == "--lost":
        sys.exit(lost(sys.argv[2], sys.argv[3:]))
    sys.exit(compare(sys.argv[1], sys.argv[2]))
