#!/bin/sh
# fuzz.sh [--keep] DURATION [PACKAGE...]: run every Go fuzz target of the
# given packages (default: the whole repository) for DURATION each (e.g.
# 3s, 30s, 2m). Failures land in the package's testdata/fuzz/<Target>/
# (go test writes them there), which go test then replays as seed corpus.
#
# The time goes to execution, not minimisation: go test minimises each new
# interesting input for up to 60 s by default, which left a 30 s run idle
# after its first seconds. FUZZ_MINIMIZE (default 100x: 100 executions per
# input) is passed as -fuzzminimizetime.
#
# --keep copies the inputs this run found that add coverage (go test writes
# them to $GOCACHE/fuzz/<package>/<Target>/) into the package's
# testdata/fuzz/<Target>/, the seed corpus checked in and replayed by every
# go test; entries above FUZZ_KEEP_MAX_BYTES (default 8192) are left out.
set -eu
keep=0
if [ "${1:-}" = "--keep" ]; then
	keep=1
	shift
fi
dur=${1:?usage: scripts/fuzz.sh [--keep] DURATION [PACKAGE...] (e.g. 3s)}
shift
minimize=${FUZZ_MINIMIZE:-100x}
maxkeep=${FUZZ_KEEP_MAX_BYTES:-8192}
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- ./...
cache=$(go env GOCACHE)/fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
ntargets=0
flaked=0
start=$(date +%s)
go list -f '{{.ImportPath}} {{.Dir}}' "$@" >"$work/pkgs"
while read -r pkg dir; do
	targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u)
	[ -n "$targets" ] || continue
	# One instrumented test binary per package (what go test -fuzz builds),
	# run in the package directory for each target: one link, not one per
	# target. go test -fuzz uses the same corpus cache, $GOCACHE/fuzz/PKG.
	bin=$work/pkg.test
	if ! go test -c -fuzz . -o "$bin" "$pkg"; then
		status=1
		continue
	fi
	for target in $targets; do
		ntargets=$((ntargets + 1))
		echo "== $pkg $target ($dur, minimise $minimize)"
		touch "$work/stamp"
		tries=0
		while :; do
			tries=$((tries + 1))
			if (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$dur" \
				-test.fuzzminimizetime "$minimize" -test.fuzzcachedir "$cache/$pkg") >"$work/out" 2>&1; then
				cat "$work/out"
				break
			fi
			cat "$work/out"
			# Go 1.26's fuzz coordinator can report its own -fuzztime
			# deadline as a failure ("context deadline exceeded", no
			# input written: go.dev/issue/75804, fixed in Go 1.27) when a
			# loaded machine leaves a worker mid-call at the deadline.
			# That, and only that, is run again (twice at most); a failure
			# that wrote an input to testdata/fuzz, or any other failure,
			# fails the run.
			new=$(find "$dir/testdata/fuzz/$target" -type f -newer "$work/stamp" 2>/dev/null | wc -l)
			if [ "$new" -eq 0 ] && [ "$tries" -lt 3 ] && grep -q '^    context deadline exceeded$' "$work/out" &&
				[ "$(grep -c '^--- FAIL' "$work/out")" -eq 1 ]; then
				echo "   go.dev/issue/75804 (the fuzz coordinator's own deadline, no input written): running $target again"
				flaked=$((flaked + 1))
				continue
			fi
			echo "FAIL: $pkg $target (reproduce: go test -run '^${target}\$' $pkg)"
			status=1
			break
		done
		if [ "$keep" = 1 ] && [ -d "$cache/$pkg/$target" ]; then
			mkdir -p "$dir/testdata/fuzz/$target"
			kept=$(find "$cache/$pkg/$target" -type f -newer "$work/stamp" -size -"$((maxkeep + 1))"c \
				-exec cp {} "$dir/testdata/fuzz/$target/" \; -print | wc -l)
			echo "   kept $kept new corpus entries in $dir/testdata/fuzz/$target"
		fi
	done
done <"$work/pkgs"
echo "== $ntargets fuzz targets, $dur each, in $(($(date +%s) - start)) s ($flaked run again after go.dev/issue/75804)"
exit $status
