#!/usr/bin/env bash
# GPU checks of gm on the lent device: `bash .devkit/run.sh` from the repository root, with
# carry [".devkit"]. Everything goes to $OUT: log.txt, models.tsv, resume.tsv, speed.tsv,
# doctor.txt, summary.txt.
#
# Variables: GM_CHECK_DEVICE (cuda; cpu for the dry run), GM_CHECK_PYTHON (the python whose
# torch libraries gm loads), GM_TORCH_LIB / GM_NVIDIA_DIR (override where they are),
# GM_CHECK_TIMEOUT (seconds per model, 60), GM_CHECK_SPEED_STEPS (steps of the speed runs),
# GM_CHECK_BUDGET (seconds, 300), GM_CHECK_REAL_STEPS (steps of the real-data GAN), GM_CHECK_MODELS (space-separated subset).
set -u
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEV=${GM_CHECK_DEVICE:-cuda}
OUT=${OUT:-/tmp/devout}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gmcheck.XXXXXX")
LOG=$OUT/log.txt
: > "$LOG"
T0=$(date +%s.%N)
say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
# Past BUDGET seconds (default 300) the remaining checks are skipped and recorded as SKIP,
# so that the script ends within the device call's time.
BUDGET=${GM_CHECK_BUDGET:-300}
over_budget() { awk -v a="$T0" -v b="$(now)" -v l="$BUDGET" 'BEGIN{exit !(b-a > l)}'; }

# --- libraries: the device's own torch (2.11) and its nvidia-* wheels -------------------
PY=${GM_CHECK_PYTHON:-/opt/torch/.venv/bin/python3}
[ -x "$PY" ] || PY=python3
TLIB=${GM_TORCH_LIB:-$("$PY" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))' 2>>"$LOG")}
NVDIR=${GM_NVIDIA_DIR:-$(dirname "$TLIB")/../nvidia}
NVLIBS=$(find "$NVDIR" -maxdepth 3 -type d -name lib 2>/dev/null | sort | tr '\n' ':')
export LD_LIBRARY_PATH="$TLIB:${NVLIBS}${LD_LIBRARY_PATH:-}"
export GM_DATA_DIR=${GM_DATA_DIR:-$KIT/data}
export GM_FEATURES_DIR=${GM_FEATURES_DIR:-$KIT/features}
export NO_COLOR=1
GM=${GM_BIN:-$KIT/gm}
chmod +x "$GM" 2>/dev/null
say "device=$DEV python=$PY torch_lib=$TLIB"
say "host: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"), $(ldd --version 2>&1 | head -n 1) (gm needs GLIBC_2.34)"
say "nvidia lib dirs: $(echo "$NVLIBS" | tr ':' ' ' | wc -w)"
"$PY" -c 'import torch;print("python torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' >>"$LOG" 2>&1

# --- doctor ---------------------------------------------------------------------------
timeout 60 "$GM" doctor > "$OUT/doctor.txt" 2>&1
say "doctor rc=$? :"
cat "$OUT/doctor.txt" >> "$LOG"
if [ "$DEV" != cpu ] && ! grep -q '^CUDA available   : true' "$OUT/doctor.txt"; then
    say "WARNING: doctor does not report CUDA as available (see doctor.txt); ldd of gm:"
    ldd "$GM" | grep -i 'torch\|not found\|cuda' >> "$LOG" 2>&1
fi

# --- every registered model -----------------------------------------------------------
MODELS=${GM_CHECK_MODELS:-$("$GM" list 2>>"$LOG" | awk '/^models:/{m=1;next} /^datasets:/{m=0} m&&NF{print $1}')}
say "models: $(echo $MODELS | wc -w): $(echo $MODELS)"
TO=${GM_CHECK_TIMEOUT:-60}
TSV=$OUT/models.tsv
printf 'model\tdataset\tstatus\tseconds\ttrain_rc\tsample_rc\teval_rc\tlikelihoods\tnote\n' > "$TSV"

# Trains `$1` with configs/$1.toml (or, for a model without one, its defaults on the first
# tiny dataset that builds), samples, evaluates; one TSV line.
check_model() {
    local m=$1 cfg=$KIT/configs/$1.toml run=$WORK/runs/$1 t ds note="" trc src=-1 erc=-1 ll=-
    t=$(now)
    if [ -f "$cfg" ]; then
        ds=$(awk -F'"' '/^dataset *=/{print $2; exit}' "$cfg")
        timeout "$TO" "$GM" train "$m" -c "$cfg" --device "$DEV" --out "$WORK/runs" --name "$m" --force >"$WORK/$m.train" 2>&1
        trc=$?
    else
        note="no config: defaults"
        for ds in bars-and-stripes two-moons eight-gaussians; do
            timeout "$TO" "$GM" train "$m" --dataset "$ds" --epochs 2 --device "$DEV" --out "$WORK/runs" --name "$m" --force >"$WORK/$m.train" 2>&1
            trc=$?
            [ $trc = 0 ] && break
        done
    fi
    if [ $trc = 0 ]; then
        timeout "$TO" "$GM" sample "$run" -n 16 -o "$WORK/$m-samples.npy" --device "$DEV" >"$WORK/$m.sample" 2>&1
        src=$?
        timeout "$TO" "$GM" eval "$run" --no-quality --device "$DEV" >"$WORK/$m.eval" 2>&1
        erc=$?
        if grep -q 'NLL' "$WORK/$m.eval"; then ll=yes; else ll=none; fi
    fi
    local st=PASS
    [ $trc = 0 ] && [ $src = 0 ] && [ $erc = 0 ] || st=FAIL
    [ $trc = 124 ] || [ $src = 124 ] || [ $erc = 124 ] && note="$note timeout ${TO}s"
    if [ $st = FAIL ]; then
        note="$note $(cat "$WORK/$m.train" "$WORK/$m.sample" "$WORK/$m.eval" 2>/dev/null | grep -m1 -i 'error\|panic\|fail' | tr '\t' ' ' | cut -c1-200)"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$ds" "$st" "$(secs "$t" "$(now)")" "$trc" "$src" "$erc" "$ll" "$note" >> "$TSV"
    say "== $m ($ds): $st train=$trc sample=$src eval=$erc ll=$ll $(secs "$t" "$(now)")s"
    for f in train sample eval; do
        [ -f "$WORK/$m.$f" ] && sed "s/^/   [$m $f] /" "$WORK/$m.$f" | grep -v 'steps.*eta' | tail -n 6 >> "$LOG"
    done
}
for m in $MODELS; do
    set +e
    if over_budget; then
        printf '%s\t-\tSKIP\t0\t-\t-\t-\t-\tover the %ss budget\n' "$m" "$BUDGET" >> "$TSV"
        say "== $m: SKIP (over the ${BUDGET}s budget)"
        continue
    fi
    check_model "$m"
done

# --- resume on the device: 2 epochs vs 1 + resume + 1 -----------------------------------
RT=$OUT/resume.tsv
printf 'model\tstatus\tseconds\tcompare\n' > "$RT"
for m in vae rbm; do
    set +e
    if over_budget; then printf '%s\tSKIP\t0\tover budget\n' "$m" >> "$RT"; say "== resume $m: SKIP"; continue; fi
    t=$(now)
    cfg=$KIT/configs/$m.toml
    a=$WORK/resume/$m-full b=$WORK/resume/$m-half
    timeout "$TO" "$GM" train "$m" -c "$cfg" --epochs 2 --device "$DEV" --out "$WORK/resume" --name "$m-full" --force >>"$WORK/resume.log" 2>&1 &&
    timeout "$TO" "$GM" train "$m" -c "$cfg" --epochs 1 --device "$DEV" --out "$WORK/resume" --name "$m-half" --force >>"$WORK/resume.log" 2>&1 &&
    timeout "$TO" "$GM" train --resume "$b" --epochs 2 --device "$DEV" >>"$WORK/resume.log" 2>&1
    rc=$?
    cmp="-"
    if [ $rc = 0 ]; then
        cmp=$("$PY" "$KIT/cmpckpt.py" "$a/checkpoints/$(cat "$a/checkpoints/latest")" "$b/checkpoints/$(cat "$b/checkpoints/latest")" 2>&1 | tail -n 1)
        rc=$?
    fi
    st=PASS; [ $rc = 0 ] || st=FAIL
    printf '%s\t%s\t%s\t%s\n' "$m" "$st" "$(secs "$t" "$(now)")" "$cmp" >> "$RT"
    say "== resume $m: $st $cmp (full $(cat "$a/checkpoints/latest" 2>/dev/null), resumed $(cat "$b/checkpoints/latest" 2>/dev/null))"
done
tail -n 20 "$WORK/resume.log" | sed 's/^/   [resume] /' >> "$LOG"

# --- speed: NADE 784-500 and RBM CD-1 (500 hidden) on binarized MNIST ------------------
ST=$OUT/speed.tsv
printf 'job\tstatus\tsteps\ttrain_seconds\tsteps_per_s\texamples_per_s\twall_seconds\tnote\n' > "$ST"
if [ "$DEV" = cpu ]; then STEPS=${GM_CHECK_SPEED_STEPS:-20}; else STEPS=${GM_CHECK_SPEED_STEPS:-1000}; fi
for job in nade-784-500 rbm-cd1-500; do
    set +e
    if over_budget; then printf '%s\tSKIP\t-\t-\t-\t-\t0\tover budget\n' "$job" >> "$ST"; say "== speed $job: SKIP"; continue; fi
    t=$(now)
    m=${job%%-*}
    timeout 90 "$GM" train "$m" -c "$KIT/configs/speed-$job.toml" --max-steps "$STEPS" --device "$DEV" --out "$WORK/speed" --name "$job" --force >"$WORK/$job.speed" 2>&1
    rc=$?
    line=$(grep -m1 '^trained ' "$WORK/$job.speed")
    steps=$(echo "$line" | sed -n 's/.* \([0-9]*\) steps in \([0-9.]*\)s.*/\1/p')
    sec=$(echo "$line" | sed -n 's/.* \([0-9]*\) steps in \([0-9.]*\)s.*/\2/p')
    sps=$(awk -v s="${steps:-0}" -v t="${sec:-0}" 'BEGIN{ if (t>0) printf "%.1f", s/t; else print "-" }')
    eps=$(awk -v s="${steps:-0}" -v t="${sec:-0}" 'BEGIN{ if (t>0) printf "%.0f", 100*s/t; else print "-" }')
    st=PASS; [ $rc = 0 ] || st=FAIL
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$job" "$st" "${steps:--}" "${sec:--}" "$sps" "$eps" "$(secs "$t" "$(now)")" "batch 100, $DEV; train_seconds from gm's summary (includes checkpoint writes)" >> "$ST"
    say "== speed $job: $st $steps steps in ${sec}s = $sps steps/s ($eps examples/s)"
    grep -v 'steps.*eta' "$WORK/$job.speed" | tail -n 5 | sed "s/^/   [$job] /" >> "$LOG"
done

# --- real data: exact NADE NLL of the speed run; GAN on grey MNIST (idx .gz) with sample
# quality on the carried feature network --------------------------------------------------
if over_budget; then say "== real data: SKIP (over budget)"; else
set +e
t=$(now)
timeout 90 "$GM" eval "$WORK/speed/nade-784-500" --no-quality --limit 200 --device "$DEV" >"$WORK/real.log" 2>&1
rc=$?
st=PASS; [ $rc = 0 ] || st=FAIL
say "== real data nade-784-500 exact NLL, 200 binarized-MNIST test images: $st rc=$rc $(secs "$t" "$(now)")s"
grep -v 'steps.*eta' "$WORK/real.log" | tail -n 4 | sed 's/^/   [real] /' | tee -a "$LOG"
t=$(now)
if [ "$DEV" = cpu ]; then RSTEPS=${GM_CHECK_REAL_STEPS:-20}; else RSTEPS=${GM_CHECK_REAL_STEPS:-300}; fi
timeout 120 "$GM" train gan -c "$KIT/configs/real-gan-mnist.toml" --max-steps "$RSTEPS" --device "$DEV" --out "$WORK/real" --name gan-mnist --force >"$WORK/real.log" 2>&1 &&
timeout 120 "$GM" eval "$WORK/real/gan-mnist" --samples 1000 --device "$DEV" >>"$WORK/real.log" 2>&1
rc=$?
st=PASS; [ $rc = 0 ] || st=FAIL
say "== real data gan on mnist ($RSTEPS steps, quality of 1000 samples): $st rc=$rc $(secs "$t" "$(now)")s"
grep -v 'steps.*eta' "$WORK/real.log" | tail -n 14 | sed 's/^/   [real] /' | tee -a "$LOG"
fi

# --- summary ---------------------------------------------------------------------------
{
    echo "device=$DEV total_seconds=$(secs "$T0" "$(now)")"
    echo "models: $(grep -c $'\tPASS\t' "$TSV") pass, $(grep -c $'\tFAIL\t' "$TSV") fail of $(($(wc -l < "$TSV") - 1))"
    column -t -s $'\t' "$TSV" 2>/dev/null || cat "$TSV"
    echo; cat "$RT"; echo; cat "$ST"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt" | tee -a "$LOG" >/dev/null
cat "$OUT/summary.txt"
rm -rf "$WORK"
