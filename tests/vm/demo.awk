# demo.awk - make demo-vm: the serial log of the demo run told as a story (tests/vm/run.sh --demo).
function field(s, name,    i, n, f) {
	n = split(s, f, " ")
	for (i = 1; i <= n; i++)
		if (index(f[i], name "=") == 1) return substr(f[i], length(name) + 2)
	return ""
}
function pages(x) { sub(/\/.*/, "", x); return x + 0 }
function tell(sc, v, rest,    st, lo, ch) {
	st = pages(field(rest, "stale")); lo = pages(field(rest, "lost")); ch = field(rest, "child")
	if (v == "SKIP" || v == "ERROR") return v ": " rest
	if (sc == "hugetlb-read")
		return st ? "the NIC sent STALE data: " st " of 512 pages are what the buffer held before the fork" \
			  : "the NIC sent the new batch (all 512 pages)"
	if (sc == "hugetlb-write")
		return lo ? "the NIC's write is LOST: the parent sees it in " 512 - lo " of 512 pages" \
			    (ch == "saw-device-write" ? "; it landed in the child's copy" : "") \
			  : "the parent sees the NIC's write (all 512 pages)" (ch == "fork-time" ? "; the child kept its fork-time copy" : "")
	if (sc == "uring-hugetlb")
		return st ? "the file got STALE data: " st " of 512 pages are the pre-fork contents" \
			  : "the file got the new batch (all 512 pages)"
	return v " " rest
}
/^R [a-z]+ RESULT / {
	m = $2; sc = $4; v = $5
	rest = $0; sub(/^R [a-z]+ RESULT [^ ]+ [^ ]+ ?/, "", rest)
	if (!(m in seen)) { seen[m] = 1; mo[++n] = m }
	out[m] = out[m] sprintf("   %-14s %s\n", sc ":", tell(sc, v, rest))
}
END {
	print ""
	print "A 2 MiB hugetlb buffer is registered with the NIC (ibv_reg_mr on soft-RoCE) or"
	print "with io_uring (a fixed buffer); the program forks, then writes its next batch."
	print "hugetlb-read: the NIC reads the buffer (RDMA READ); hugetlb-write: the NIC writes"
	print "into it (RDMA WRITE); uring-hugetlb: IORING_OP_WRITE_FIXED writes it to a file."
	for (i = 1; i <= n; i++) {
		print ""
		if (mo[i] == "control") print "=== without libsafefork ==="
		else print "=== with LD_PRELOAD=libsafefork.so SAFEFORK_MODE=" mo[i] " ==="
		printf "%s", out[mo[i]]
	}
}
