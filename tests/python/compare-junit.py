"""compare-junit BASELINE.xml SHIM.xml: the outcome of every test case in two regrtest --junit-xml files.

Prints the counts of each run and one line per test case whose outcome
(passed, skipped, failure, error, or missing: its whole file did not report)
differs; exits 1 if any differs, 0 if the shimmed run matches the baseline.
"""

import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    out = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        kinds = {k.tag for k in tc}
        out[tc.get("name")] = ("error" if "error" in kinds else "failure" if "failure" in kinds
                               else "skipped" if "skipped" in kinds else "passed")
    return out


def counts(res):
    c = {k: 0 for k in ("passed", "skipped", "failure", "error")}
    for v in res.values():
        c[v] += 1
    return "%d test cases: %s" % (len(res), ", ".join("%d %s" % (n, k) for k, n in c.items()))


base, shim = outcomes(sys.argv[1]), outcomes(sys.argv[2])
print("baseline: " + counts(base))
print("shim:     " + counts(shim))
diff = sorted(n for n in set(base) | set(shim) if base.get(n, "missing") != shim.get(n, "missing"))
for n in diff:
    print("  differs: %s: baseline %s, shim %s" % (n, base.get(n, "missing"), shim.get(n, "missing")))
sys.exit(1 if diff else 0)
