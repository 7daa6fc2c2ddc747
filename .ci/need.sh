# .ci/need.sh - sourced by .ci/run and the .ci/*.sh steps: install the
# Debian packages a step needs (CI assumes nothing was installed by hand).
#   ci_need "what happens without them" package...
# A failed install is said (status 1) and left to the step, which skips what it cannot run.
ci_need() {
	local why=$1 p missing="" sudo=""
	shift
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	[ "$(id -u)" = 0 ] || sudo="sudo"
	echo "== installing:$missing"
	{ $sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
		{ echo "could not install$missing: $why"; return 1; }
}
