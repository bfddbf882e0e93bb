#!/usr/bin/env bash
# bench-gmm: time `lbtune gmm fit` against scikit-learn's GaussianMixture and
# golearn's clustering.ExpectationMaximization on the same synthetic data.
#
# For every case (n = 1e4, 1e5; d = 8, 16) it generates a mixture CSV in a
# temp dir, then:
#   - lbtune and sklearn each fit k = KMIN..KMAX (BIC selection), same
#     covariance type, n_init, tol, max_iter, reg_covar and thread count;
#   - lbtune (--k K_TRUE) and golearn fit the true k once (golearn has no
#     model selection, no mixture weights and hard assignments).
# It prints the time ratios and the mean log-likelihood difference.
#
# Environment: THREADS (default: nproc), KMIN/KMAX (2/8), TOL (1e-3),
# MAX_ITER (100), REG (1e-6), COV (full), CASES ("n:d:ktrue:n_init ...";
# n_init is the same for both sides: 3 restarts at n = 1e4, 1 at 1e5 to keep
# the run under 10 minutes),
# GOLEARN_TIMEOUT (60s), LBTUNE (bin/lbtune).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the sklearn command
# only (they slow numpy on this machine); the BLAS kernel and thread count
# it ran with are printed from threadpoolctl.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-$(nproc)}
KMIN=${KMIN:-2}
KMAX=${KMAX:-8}
TOL=${TOL:-1e-3}
MAX_ITER=${MAX_ITER:-100}
REG=${REG:-1e-6}
COV=${COV:-full}
SEED=${SEED:-1}
CASES=${CASES:-"10000:8:4:3 10000:16:6:3 100000:8:4:1 100000:16:6:1"}
GOLEARN_TIMEOUT=${GOLEARN_TIMEOUT:-60s}
LBTUNE=${LBTUNE:-bin/lbtune}
PY=/usr/bin/python3

# Install what the comparison needs on a fresh Debian machine (root only).
missing=()
command -v jq >/dev/null || missing+=(jq)
"$PY" -c 'import sklearn' 2>/dev/null || missing+=(python3-sklearn)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } || true
fi
command -v jq >/dev/null || { echo "bench-gmm: jq is required (apt-get install jq)" >&2; exit 1; }
[ -x "$LBTUNE" ] || go build -o "$LBTUNE" ./cmd/lbtune
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/gmmcmp" ./bench/gmmcmp

have_sklearn=1
if ! "$PY" -c 'import sklearn' 2>/dev/null; then
	have_sklearn=0
	echo "bench-gmm: scikit-learn not importable by $PY: skipping the sklearn comparison" >&2
fi

sklearn() { # csv kmin kmax
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
		OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
		"$PY" bench/sklearn_gmm.py "$1" "$2" "$3" "$COV" "$N_INIT" "$TOL" "$MAX_ITER" "$REG" "$SEED"
}
lbtune() { # csv kmin kmax
	GOMAXPROCS="$THREADS" "$LBTUNE" gmm fit --csv "$1" --kmin "$2" --kmax "$3" --cov "$COV" \
		--n-init "$N_INIT" --tol "$TOL" --max-iter "$MAX_ITER" --reg-covar "$REG" --seed "$SEED" \
		--threads "$THREADS" --json
}
num() { # printf format value: "-" for a missing value
	case "$2" in null | - | nan | NaN | "") printf -- - ;; *) printf "$1" "$2" ;; esac
}
ratio() { [ "$2" = - ] && { printf -- -; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
lldiff() { [ "$2" = - ] || [ "$2" = null ] && { printf -- -; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (b != 0) printf "%+.3f%%", 100 * (a - b) / (b < 0 ? -b : b); else printf "-" }'; }

echo "bench-gmm: threads=$THREADS cov=$COV k=$KMIN..$KMAX tol=$TOL max_iter=$MAX_ITER reg_covar=$REG seed=$SEED"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
blas_printed=0
printf '\n%-7s %-3s %-6s %-6s | %-9s %-9s %-6s %-6s %-6s | %-11s %-11s %-9s | %-8s %-9s %-11s %-11s %-6s\n' \
	n d k_true n_init "lbtune_s" "sklearn_s" "lb/sk" "cpu" "k" "ll_lbtune" "ll_sklearn" "ll_diff" \
	"lb@k_s" "golearn_s" "ll_lb@k" "ll_golearn" "lb/gl"
for c in $CASES; do
	IFS=: read -r n d kt N_INIT <<<"$c"
	N_INIT=${N_INIT:-1}
	csv="$tmp/gmm_${n}_${d}.csv"
	"$tmp/gmmcmp" gen -n "$n" -d "$d" -k "$kt" -seed "$SEED" -out "$csv"

	lb=$(lbtune "$csv" "$KMIN" "$KMAX")
	lb_s=$(jq -r .seconds <<<"$lb"); lb_cpu=$(jq -r .cpu_seconds <<<"$lb"); lb_k=$(jq -r .k <<<"$lb"); lb_ll=$(jq -r .log_likelihood <<<"$lb")
	sk_s=-; sk_cpu=-; sk_k=-; sk_ll=-
	if [ "$have_sklearn" = 1 ]; then
		sk=$(sklearn "$csv" "$KMIN" "$KMAX")
		sk_s=$(jq -r .seconds <<<"$sk"); sk_cpu=$(jq -r .cpu_seconds <<<"$sk"); sk_k=$(jq -r .k <<<"$sk"); sk_ll=$(jq -r .log_likelihood <<<"$sk")
		if [ "$blas_printed" = 0 ]; then
			echo "sklearn $(jq -r .sklearn <<<"$sk") BLAS (threadpoolctl): $(jq -c .blas <<<"$sk")"
			blas_printed=1
		fi
	fi

	one=$(lbtune "$csv" "$kt" "$kt")
	one_s=$(jq -r .seconds <<<"$one"); one_ll=$(jq -r .log_likelihood <<<"$one")
	gl=$(GOMAXPROCS="$THREADS" "$tmp/gmmcmp" golearn -csv "$csv" -k "$kt" -timeout "$GOLEARN_TIMEOUT")
	gl_s=$(jq -r .seconds <<<"$gl"); gl_ll=$(jq -r .log_likelihood <<<"$gl")
	gl_note=""
	[ "$(jq -r '.timeout // false' <<<"$gl")" = true ] && gl_note=" (timeout)"
	[ -n "$(jq -r '.error // empty' <<<"$gl")" ] && gl_note=" ($(jq -r .error <<<"$gl"))"
	[ "$(jq -r .tries <<<"$gl")" -gt 1 ] && gl_note="$gl_note (golearn tries: $(jq -r .tries <<<"$gl"))"

	printf '%-7s %-3s %-6s %-6s | %-9.3f %-9s %-6s %-6s %-6s | %-11.5f %-11s %-9s | %-8.3f %-9s %-11.5f %-11s %-6s%s\n' \
		"$n" "$d" "$kt" "$N_INIT" "$lb_s" "$(num %.3f "$sk_s")" "$(ratio "$lb_s" "$sk_s")" "$(ratio "$lb_cpu" "$sk_cpu")" "$lb_k/$sk_k" \
		"$lb_ll" "$(num %.5f "$sk_ll")" "$(lldiff "$lb_ll" "$sk_ll")" \
		"$one_s" "$(num %.3f "$gl_s")" "$one_ll" "$(num %.5f "$gl_ll")" "$(ratio "$one_s" "$gl_s")" "$gl_note"
done
echo
echo "lb/sk: lbtune wall time / sklearn wall time over the BIC sweep (below 1: lbtune faster); cpu: the same for user+system CPU time; k: BIC-selected k lbtune/sklearn; ll_diff: (lbtune - sklearn) / |sklearn| mean log-likelihood"
echo "lb@k vs golearn: one fit at the true k; golearn's log-likelihood uses its means/covariances with weights = assignment shares"
