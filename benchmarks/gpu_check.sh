#!/bin/bash
# The GPU check: one unattended run (under 8 minutes on one GPU) that writes one Markdown report.
#
#   benchmarks/gpu_check.sh [REPORT]        # default report: gpu_check_report.md
#
# Steps: the CUDA tests (tests/test_cuda.py); bench_train.py --device cuda (engine vs the seed-style
# DataLoader loop, bf16 vs fp32, telemetry on/off); then benchmarks/gpu_check.py: a ResNet on
# CIFAR-10-shaped synthetic data (images/s, epoch time, bf16 vs fp32), a forced out-of-memory trial then
# a normal one, host syncs per epoch (torch.cuda.set_sync_debug_mode), two trials per GPU vs one and the
# GPU's busy share while a TUI-style reader polls the store.
# Without CUDA it says so and runs the CPU dry path: small versions of the same steps (CI runs it).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
report="$(realpath -m "${1:-gpu_check_report.md}")"
python="${PYTHON:-$root/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$root" || exit 1
umask 077

status=0
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
section() {  # section TITLE COMMAND...: its standard output into the report, or its failure
    local title="$1"; shift
    local started=$SECONDS out rc
    echo "== $title" >&2
    out="$("$@" 2>"$errors")"
    rc=$?
    {
        echo "# $title"
        echo
        echo "$out"
        if [[ $rc -ne 0 ]]; then
            status=1
            echo
            echo "**FAILED** (exit $rc): \`$*\`"
            echo
            echo '```'
            tail -n 60 "$errors"
            echo '```'
        fi
        echo
        echo "_$((SECONDS - started)) s_"
        echo
    } >> "$report"
}

if "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    dry=()
    train_args=(--device cuda --repeats 3 --epochs 5)
    mode="CUDA: $("$python" -c 'import torch; print(torch.cuda.get_device_name())')"
else
    dry=(--dry)
    train_args=(--device cpu --repeats 1 --epochs 2 --small --threads 1)
    mode="no CUDA here: the CPU dry path (small versions of every step; GPU figures are n/a)"
fi

{
    echo "# tunetui GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo "$mode."
    echo
} > "$report"
echo "$mode" >&2

# -n 0: one test process (pyproject's -n 2 would start two more, each importing torch, and share one GPU)
section "CUDA tests" "$python" -m pytest tests/test_cuda.py -q -p no:cacheprovider -n 0
section "Training loop (bench_train.py ${train_args[*]})" "$python" benchmarks/bench_train.py "${train_args[@]}"
section "ResNet, OOM, host syncs, trials per GPU (gpu_check.py)" "$python" benchmarks/gpu_check.py "${dry[@]}"

echo "report: $report" >&2
exit $status
