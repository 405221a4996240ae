#!/usr/bin/env bash
# LJSpeech recipe: numbered, resumable stages; each one calls a `wavediff` entry point.
#
#   0 download   LJSpeech-1.1 (resumable, SHA-256 checked)      wavediff data download
#   1 prepare    train/val/test folders (the 12,500/100/500 lists) wavediff data prepare
#   2 features   mel feature cache shared by both trainings      wavediff data features
#   3 vocoder    train the vocoder                               wavediff train vocoder
#   4 acoustic   train the acoustic model                        wavediff train acoustic
#   5 synth      synthesise the test sentences                   wavediff synth --from-file
#   6 eval       evaluation table (Markdown + JSON)              wavediff eval
#
# A stage that finished with the same inputs is skipped (markers in EXP/.done/); an interrupted
# training continues from its last checkpoint. Run from anywhere; see --help.
set -euo pipefail

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- options -------------------------------------------------------------------------------------
stage=0
stop_stage=6
config=base                   # conf/NAME.yaml (or a path to a recipe YAML)
data_dir=""                   # an existing LJSpeech-layout corpus: stage 0 is skipped
download_dir=downloads        # where stage 0 puts the archive and LJSpeech-1.1/
exp_dir=""                    # default: exp/<config name>
ngpu=""                       # empty: CUDA if available; 0: CPU; N > 1: torchrun with N processes
max_time=""                   # seconds a training stage may run in this call (empty: no limit)
init_vocoder=""               # start stage 3 from these vocoder weights (a model folder, or default)
init_acoustic=""              # start stage 4 from these acoustic-model weights (likewise)
url=https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2
sha256=be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5
python=${PYTHON:-python3}     # the interpreter that has wavediff installed

usage() {
    cat <<EOF
Usage: $0 [options]
  --stage N          first stage to run (default $stage)
  --stop-stage N     last stage to run (default $stop_stage)
  --config NAME      recipe config: conf/NAME.yaml or a YAML path (default $config; also: smoke)
  --data-dir DIR     use an existing LJSpeech-layout corpus (metadata.csv + wavs/); skips stage 0
  --download-dir DIR stage 0 downloads and extracts here (default $download_dir)
  --exp-dir DIR      experiment folder (default exp/<config>)
  --ngpu N           0: CPU; 1: one GPU; N > 1: torchrun --nproc_per_node=N (default: GPU if available)
  --max-time S       stop each training stage after S seconds (state saved; run the stage again to resume)
  --init-vocoder DIR   stage 3 fine-tunes these trained vocoder weights (EXP/model, or default: the
                       bundled voice's); the vocoder config must describe the same model
  --init-acoustic DIR  stage 4 likewise for the acoustic model
  --url URL          archive to download in stage 0 (default: the LJSpeech-1.1 release)
  --sha256 HEX       its expected SHA-256 (empty: not checked)
Environment: PYTHON (default python3) runs \`\$PYTHON -m wavediff\`.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        --download-dir) download_dir=$2; shift 2 ;;
        --exp-dir) exp_dir=$2; shift 2 ;;
        --ngpu) ngpu=$2; shift 2 ;;
        --max-time) max_time=$2; shift 2 ;;
        --init-vocoder) init_vocoder=$2; shift 2 ;;
        --init-acoustic) init_acoustic=$2; shift 2 ;;
        --url) url=$2; shift 2 ;;
        --sha256) sha256=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "[$(date +%H:%M:%S)] $*"; }
die() { echo "$0: error: $*" >&2; exit 1; }
is_int() { case "$1" in ''|*[!0-9]*) return 1 ;; esac; }
is_int "$stage" && is_int "$stop_stage" || die "--stage and --stop-stage take stage numbers 0-6"
[ -z "$ngpu" ] || is_int "$ngpu" || die "--ngpu takes a number of GPUs (0 for CPU)"

# ---- paths and configuration ---------------------------------------------------------------------
case "$config" in
    */*|*.yaml|*.yml) conf=$config; config_name=$(basename "${config%.*}") ;;
    *) conf=$recipe_dir/conf/$config.yaml; config_name=$config ;;
esac
[ -f "$conf" ] || die "no recipe config $conf (available: $(cd "$recipe_dir/conf" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' '))"
exp_dir=${exp_dir:-exp/$config_name}
mkdir -p "$exp_dir"
exp_dir=$(cd "$exp_dir" && pwd)          # absolute: the feature cache is keyed by file paths
data=$exp_dir/data                       # stage 1 output: train/ val/ test/
done_dir=$exp_dir/.done

wavediff() { "$python" -m wavediff "$@"; }
# the recipe's settings as shell variables (vocoder_yaml, acoustic_yaml, vocoder_steps, ...)
settings=$(wavediff data recipe-config "$conf" --out "$exp_dir/conf")
eval "$settings"

device_args=()
case "$ngpu" in
    "") ;;
    0) device_args=(--device cpu) ;;
    *) device_args=(--device cuda) ;;
esac

# ---- stage bookkeeping ---------------------------------------------------------------------------
# want N: is stage N in [--stage, --stop-stage]?
want() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
# done_already N SIGNATURE: finished before with the same inputs?
done_already() { [ -f "$done_dir/$1" ] && [ "$(cat "$done_dir/$1")" = "$2" ]; }
mark_done() { mkdir -p "$done_dir"; printf '%s\n' "$2" > "$done_dir/$1"; }
# begin N NAME SIGNATURE: log and decide (status 1: skip)
begin() {
    if done_already "$1" "$3"; then log "stage $1 ($2): done already, skipped"; return 1; fi
    log "stage $1: $2"; stage_start=$SECONDS
}
finish() { mark_done "$1" "$2"; log "stage $1 finished in $((SECONDS - stage_start)) s"; }
sum_of() { { cat "$@" 2>/dev/null || true; } | cksum; }   # checksum of files (missing ones: empty)

corpus_dir() {  # the corpus of stage 1
    if [ -n "$data_dir" ]; then echo "$data_dir"; else echo "$download_dir/LJSpeech-1.1"; fi
}

# trained_step RUN: the step of RUN's latest training state (0 when none)
trained_step() {
    local latest
    [ -f "$1/state/latest" ] || { echo 0; return; }
    latest=$(tr -cd '0-9' < "$1/state/latest")
    echo $((10#${latest:-0}))
}

# train KIND RUN YAML STEPS [INIT]: train (or resume) one model on the train split
train() {
    local kind=$1 run=$2 yaml=$3 steps=$4 init=${5:-}
    mkdir -p "$run" "$exp_dir/features"
    [ -e "$run/features" ] || ln -s ../features "$run/features"   # stage 2's cache
    local args=(train "$kind" --data "$data/train" --out "$run" --config "$yaml")
    [ -z "$steps" ] || args+=(--max-steps "$steps")
    [ -z "$max_time" ] || args+=(--max-time "$max_time")
    if [ -f "$run/run.json" ]; then args+=(--resume); elif [ -n "$init" ]; then args+=(--init "$init"); fi
    args+=(${device_args[@]+"${device_args[@]}"})
    if [ -n "$ngpu" ] && [ "$ngpu" -gt 1 ]; then
        "$python" -m torch.distributed.run --standalone --nproc_per_node="$ngpu" -m wavediff "${args[@]}"
    else
        wavediff "${args[@]}"
    fi
    if [ -n "$steps" ] && [ "$(trained_step "$run")" -lt "$steps" ]; then
        die "$kind training stopped at step $(trained_step "$run") of $steps; run stage again to resume"
    fi
}

# ---- 0: download ---------------------------------------------------------------------------------
if want 0; then
    if [ -n "$data_dir" ]; then
        [ -d "$data_dir" ] || die "--data-dir $data_dir does not exist"
        log "stage 0: --data-dir $data_dir given; no download"
    elif begin 0 "download" "$url $sha256 $download_dir"; then
        wavediff data download "$url" --out "$download_dir" ${sha256:+--sha256 "$sha256"}
        [ -d "$(corpus_dir)" ] || die "the archive did not contain $(corpus_dir)"
        finish 0 "$url $sha256 $download_dir"
    fi
fi

# ---- 1: prepare ----------------------------------------------------------------------------------
if want 1; then
    corpus=$(corpus_dir)
    [ -d "$corpus" ] || die "no corpus at $corpus: run stage 0 or pass --data-dir"
    corpus=$(cd "$corpus" && pwd)
    sig="$corpus $split $val_utterances $test_utterances $split_seed"
    if begin 1 "prepare $corpus" "$sig"; then
        wavediff data prepare --data "$corpus" --out "$data" --split "$split" --split-from "$recipe_dir/local" \
            --val "$val_utterances" --test "$test_utterances" --seed "$split_seed"
        finish 1 "$sig"
    fi
fi

# ---- 2: features ---------------------------------------------------------------------------------
if want 2; then
    sig="$(sum_of "$data/summary.json") $(sum_of "$vocoder_yaml") $(sum_of "$acoustic_yaml")"
    if begin 2 "features" "$sig"; then
        wavediff data features --data "$data/train" --out "$exp_dir/features" \
            --vocoder-config "$vocoder_yaml" --acoustic-config "$acoustic_yaml" --workers "$feature_workers"
        finish 2 "$sig"
    fi
fi

# ---- 3: vocoder ----------------------------------------------------------------------------------
if want 3; then
    sig="$(sum_of "$data/summary.json" "$vocoder_yaml") steps=$vocoder_steps init=$init_vocoder"
    if begin 3 "train vocoder -> $exp_dir/vocoder" "$sig"; then
        train vocoder "$exp_dir/vocoder" "$vocoder_yaml" "$vocoder_steps" "$init_vocoder"
        finish 3 "$sig"
    fi
fi

# ---- 4: acoustic model ---------------------------------------------------------------------------
if want 4; then
    sig="$(sum_of "$data/summary.json" "$acoustic_yaml") steps=$acoustic_steps init=$init_acoustic"
    if begin 4 "train acoustic model -> $exp_dir/acoustic" "$sig"; then
        train acoustic "$exp_dir/acoustic" "$acoustic_yaml" "$acoustic_steps" "$init_acoustic"
        finish 4 "$sig"
    fi
fi

# ---- 5: synthesis --------------------------------------------------------------------------------
if want 5; then
    sig="$(sum_of "$done_dir/3" "$done_dir/4" "$data/test/text.txt") $synth_steps $synth_vocoder_steps $synth_seed"
    if begin 5 "synthesise $data/test/text.txt -> $exp_dir/synth/test" "$sig"; then
        rm -rf "$exp_dir/synth/test"; mkdir -p "$exp_dir/synth"
        wavediff synth --from-file "$data/test/text.txt" --out-dir "$exp_dir/synth/test" \
            --checkpoint "$exp_dir/acoustic" --vocoder "$exp_dir/vocoder" --seed "$synth_seed" \
            ${synth_steps:+--steps "$synth_steps"} ${synth_vocoder_steps:+--vocoder-steps "$synth_vocoder_steps"} \
            ${device_args[@]+"${device_args[@]}"} > "$exp_dir/synth/log.txt"
        finish 5 "$sig"
    fi
fi

# ---- 6: evaluation -------------------------------------------------------------------------------
if want 6; then
    sig="$(sum_of "$done_dir/5") $eval_metrics $eval_ceiling"
    if begin 6 "evaluate -> $exp_dir/eval/results.md" "$sig"; then
        mkdir -p "$exp_dir/eval"
        wavediff eval --ref "$data/test" --gen "$exp_dir/synth/test" --text "$data/test/text.txt" \
            ${eval_metrics:+--metrics "$eval_metrics"} ${eval_ceiling:+--ceiling} \
            --out-json "$exp_dir/eval/results.json" --out-md "$exp_dir/eval/results.md" \
            ${device_args[@]+"${device_args[@]}"}
        finish 6 "$sig"
    fi
fi
log "done: stages $stage-$stop_stage of $exp_dir"
