# verdict.awk - judge one kernel's serial log (tests/vm/run.sh).
#   awk -v release=5.10.0-46-amd64 -v modes="control copy dontfork auto" -f verdict.awk serial.log.txt
# Prints the table, one row per scenario, then "COUNTS pass fail skip".
# A row passes when every run with the library is COHERENT (in copy and auto
# the child also found the fork-time data in its copy; in dontfork it has
# none) and, where this kernel does not protect pinned pages of that kind,
# the control shows the corruption (else the run proves nothing: FAIL).

function must_corrupt(sc,    kind, op) {
	kind = sc; sub(/-.*/, "", kind)
	op = sc; sub(/^[^-]*-/, "", op)
	if (kind == "uring") { kind = op; op = "uring" }
	if (op != "read" && op != "write" && op != "exit" && op != "uring")
		return 0 # registered while shared, queues: the kernel's own COW break at pin time; only reported
	if (kmaj < 5 || (kmaj == 5 && kmin < 9))
		return 1 # no early COW of pinned pages at all
	return kind == "hugetlb" && kmaj == 5 && kmin < 12 # hugetlb early COW: 5.12
}

function cell(sc, m,    v, s) {
	v = V[sc, m]
	if (v == "") return "-"
	if (v == "STALE") s = v " " ST[sc, m]
	else if (v == "LOST") s = v " " LO[sc, m]
	else if (v == "STALE+LOST") s = v " " substr(ST[sc, m], 1, index(ST[sc, m], "/") - 1) "+" LO[sc, m]
	else s = v
	if (m == "control" && CH[sc, m] == "saw-device-write") s = s " (in child)"
	else if (m != "control" && v == "COHERENT" && !child_ok(sc, m)) s = s " child:" CH[sc, m]
	return s
}

function child_ok(sc, m) {
	if (m == "dontfork") return CH[sc, m] != "died"
	return CH[sc, m] == "fork-time"
}

function field(s, name,    i, n, f) {
	n = split(s, f, " ")
	for (i = 1; i <= n; i++)
		if (index(f[i], name "=") == 1) return substr(f[i], length(name) + 2)
	return ""
}

BEGIN {
	split(release, r, /[.-]/); kmaj = r[1] + 0; kmin = r[2] + 0
	nm = split(modes, M, " ")
}
/^R [a-z]+ RESULT / {
	m = $2; sc = $4; v = $5
	if (!(sc in seen)) { seen[sc] = 1; order[++n] = sc }
	V[sc, m] = v
	rest = $0; sub(/^R [a-z]+ RESULT [^ ]+ [^ ]+ ?/, "", rest)
	REST[sc, m] = rest
	ST[sc, m] = field(rest, "stale"); LO[sc, m] = field(rest, "lost"); CH[sc, m] = field(rest, "child")
	next
}
/^AUTO / {
	a = $0; sub(/^AUTO [^ ]+ /, "", a)
	if (a ~ /bytes copied/) {
		b = a; sub(/ bytes copied.*/, "", b); sub(/.* /, "", b)
		a = b + 0 ? sprintf("copy %.1f MiB", b / 1048576) : "kernel"
	} else a = "kernel"
	AUTO[$2] = a
	next
}
/^NOTE / {
	note = $0; sub(/^NOTE /, "", note); NOTES = NOTES "   note: " note "\n"
}
END {
	printf "   %-21s", "scenario"
	for (i = 1; i <= nm; i++) printf " %-*s", (M[i] == "control" ? 27 : 10), M[i] (M[i] == "control" ? " (* must corrupt)" : "")
	printf " %-14s %s\n", "auto did", "result"
	pass = fail = skip = 0
	for (j = 1; j <= n; j++) {
		sc = order[j]; res = "PASS"; why = ""
		for (i = 1; i <= nm; i++) {
			m = M[i]; v = V[sc, m]
			if (v == "") { res = "FAIL"; why = why " no result in " m ";"; continue }
			if (v == "SKIP") { if (res == "PASS") res = "SKIP"; why = why " " m ": " REST[sc, m] ";"; continue }
			if (v == "ERROR") { res = "FAIL"; why = why " " m ": " REST[sc, m] ";"; continue }
			if (m == "control") {
				if (must_corrupt(sc) && v == "COHERENT") { res = "FAIL"; why = why " control coherent where this kernel should corrupt: void run;" }
				continue
			}
			if (v != "COHERENT" || !child_ok(sc, m)) { res = "FAIL"; why = why " " m ": " v " " REST[sc, m] ";" }
		}
		printf "   %-21s", sc
		for (i = 1; i <= nm; i++) {
			c = cell(sc, M[i])
			if (M[i] == "control" && must_corrupt(sc)) c = c " *"
			printf " %-*s", (M[i] == "control" ? 27 : 10), c
		}
		printf " %-14s %s%s\n", (sc in AUTO ? AUTO[sc] : "-"), res, why
		if (res == "PASS") pass++; else if (res == "FAIL") fail++; else skip++
	}
	printf "%s", NOTES
	if (n == 0) { print "   no scenario ran"; fail++ }
	print "COUNTS", pass, fail, skip
}
