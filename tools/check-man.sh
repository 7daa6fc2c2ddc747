#!/bin/sh
# check-man.sh MANDIR PAGE... - render each page with groff's warnings on
# (-ww) and fail on any output; a page that is only a ".so" link must name
# a page that exists.  Last line: "N pages checked, N with warnings".
set -u
dir=$1
shift
bad=0 n=0
for page in "$@"; do
	f=$dir/$(basename "$page")
	n=$((n + 1))
	if [ "$(grep -cv '^\.\\"' "$f")" = 1 ] && grep -q '^\.so ' "$f"; then
		target=$(sed -n 's/^\.so man[0-9]\///p' "$f")
		[ -f "$dir/$target" ] && { echo "ok: $page (link to $target)"; continue; }
		echo "$page: .so names a missing page"; bad=$((bad + 1)); continue
	fi
	out=$(LC_ALL=C.UTF-8 groff -ww -z -t -man -Kutf8 "$f" 2>&1)
	if [ -n "$out" ]; then
		echo "$page:"; echo "$out"; bad=$((bad + 1))
	else
		echo "ok: $page"
	fi
done
echo "$n pages checked, $bad with warnings"
[ "$bad" -eq 0 ]
