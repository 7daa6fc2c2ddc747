"""compare-junit: test-case outcomes in regrtest --junit-xml files, baseline against shim.

compare-junit.py BASELINE.xml SHIM.xml
    Prints the counts of each run and one line per test case whose outcome
    (passed, skipped, failure, error, or missing: its whole file did not
    report) differs.  Exit 1 if any differs, 0 if the shimmed run matches.

compare-junit.py --reruns BASELINE.xml SHIM.xml REBASE.xml RESHIM.xml
    For each test case that differs between the first two, REBASE and
    RESHIM hold it run many times in each configuration.  It is explained
    (a flaky test, not the library) only when the baseline re-runs show the
    outcome the shimmed run had; otherwise it is reproduced under the library
    alone, or not reproduced at all (timing-dependent): exit 1 unless every
    difference is explained.
"""

import collections
import sys
import xml.etree.ElementTree as ET


def cases(path):
    for tc in ET.parse(path).getroot().iter("testcase"):
        kinds = {k.tag for k in tc}
        yield tc.get("name"), ("error" if "error" in kinds else "failure" if "failure" in kinds
                               else "skipped" if "skipped" in kinds else "passed")


def counts(res):
    c = collections.Counter(res.values())
    return "%d test cases: %s" % (len(res), ", ".join("%d %s" % (c[k], k) for k in ("passed", "skipped", "failure", "error")))


def compare(a, b):
    base, shim = dict(cases(a)), dict(cases(b))
    print("baseline: " + counts(base))
    print("shim:     " + counts(shim))
    diff = sorted(n for n in set(base) | set(shim) if base.get(n, "missing") != shim.get(n, "missing"))
    for n in diff:
        print("  differs: %s: baseline %s, shim %s" % (n, base.get(n, "missing"), shim.get(n, "missing")))
    return 1 if diff else 0


def reruns(a, b, ra, rb):
    base, shim = dict(cases(a)), dict(cases(b))
    seen = {}
    for which, path in ((0, ra), (1, rb)):
        for name, outcome in cases(path):
            seen.setdefault(name, (collections.Counter(), collections.Counter()))[which][outcome] += 1
    unexplained = 0
    for name in sorted(n for n in set(base) | set(shim) if base.get(n, "missing") != shim.get(n, "missing")):
        was = shim.get(name, "missing")
        rebase, reshim = seen.get(name, (collections.Counter(), collections.Counter()))
        if rebase[was]:
            verdict = ("the baseline shows it too: a flaky test, not the library" if was != "passed"
                       else "passes under the library: the baseline's flaky failure")
        elif reshim[was]:
            verdict = "REPRODUCED under the library only"
        else:
            verdict = "NOT REPRODUCED in either configuration (timing-dependent?), unexplained"
        print("  %s: shim run %s, baseline run %s; re-runs: baseline %s, shim %s: %s"
              % (name, was, base.get(name, "missing"), dict(rebase), dict(reshim), verdict))
        unexplained += not rebase[was]
    return 1 if unexplained else 0


if __name__ == "__main__":
    if sys.argv[1] == "--reruns":
        sys.exit(reruns(*sys.argv[2:6]))
    sys.exit(compare(sys.argv[1], sys.argv[2]))
