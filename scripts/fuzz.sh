#!/bin/sh
# fuzz.sh DURATION: run every Go fuzz target of the repository for DURATION
# each (e.g. 30s, 2m). Fuzz targets are seeded with the real captures in
# ../shared/captures; failures land in the package's testdata/fuzz.
set -eu
dur=${1:?usage: scripts/fuzz.sh DURATION (e.g. 30s)}
cd "$(dirname "$0")/.."
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u)
	for target in $targets; do
		echo "== $pkg $target ($dur)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" "$pkg"; then
			status=1
		fi
	done
done
exit $status
