#!/usr/bin/env bash
# Synthetic-speech recipe: no download. Stage 0 reads LJSpeech's sentences (local/transcripts.csv)
# with Festival's HTS voice into an LJSpeech-layout corpus at 22050 Hz; stages 1-6 are the
# LJSpeech recipe's (prepare, features, vocoder, acoustic model, synthesis, evaluation), run on it.
# The ids are LJSpeech's, so the split is the standard one restricted to the sentences read.
#
# Needs Festival: apt-get install festival festvox-us-slt-hts
set -euo pipefail

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ljspeech=$recipe_dir/../ljspeech/run.sh

# ---- options -------------------------------------------------------------------------------------
stage=0
stop_stage=6
num=""                        # utterances to read (the first N sentences) ...
hours=""                      # ... or hours of audio (default: --num 1000)
workers=$(nproc 2>/dev/null || echo 1)
data_dir=data/festival        # the corpus written by stage 0
sentences=$recipe_dir/local/transcripts.csv
shuffle_seed=""               # take sentences in a seeded random order instead of file order
python=${PYTHON:-python3}
config=base                   # ../ljspeech/conf/NAME.yaml or a YAML path
exp_dir=""                    # default: exp/festival_<config>
ngpu=""
max_time=""
init_vocoder=""
init_acoustic=""

usage() {
    cat <<EOF
Usage: $0 [options]
  --stage N / --stop-stage N   stages to run (default $stage-$stop_stage; 0 builds the corpus)
  --num N | --hours H          corpus size: utterances or hours (default --num 1000)
  --workers K                  parallel Festival processes (default $workers)
  --data-dir DIR               corpus folder (default $data_dir)
  --sentences FILE             'id|text' lines to read (default local/transcripts.csv: LJSpeech's 13,100)
  --shuffle-seed S             read the sentences in a seeded random order
  --config NAME, --ngpu N, --max-time S   as in ../ljspeech/run.sh (default config $config)
  --init-vocoder DIR, --init-acoustic DIR  as in ../ljspeech/run.sh (fine-tune trained weights)
  --exp-dir DIR                experiment folder (default exp/festival_<config>)
Environment: PYTHON (default python3) runs \`\$PYTHON -m wavediff\`.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --num) num=$2; shift 2 ;;
        --hours) hours=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --data-dir) data_dir=$2; shift 2 ;;
        --sentences) sentences=$2; shift 2 ;;
        --shuffle-seed) shuffle_seed=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --exp-dir) exp_dir=$2; shift 2 ;;
        --ngpu) ngpu=$2; shift 2 ;;
        --max-time) max_time=$2; shift 2 ;;
        --init-vocoder) init_vocoder=$2; shift 2 ;;
        --init-acoustic) init_acoustic=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -z "$num" ] || [ -z "$hours" ] || { echo "$0: error: give --num or --hours, not both" >&2; exit 2; }
[ -n "$num$hours" ] || num=1000
config_name=$(basename "${config%.yaml}")
exp_dir=${exp_dir:-exp/festival_$config_name}
log() { echo "[$(date +%H:%M:%S)] $*"; }

# ---- 0: read the sentences with Festival (wavs already there are kept) ---------------------------
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    log "stage 0: festival corpus -> $data_dir"
    "$python" -m wavediff data festival --out "$data_dir" --sentences "$sentences" \
        ${num:+--num "$num"} ${hours:+--hours "$hours"} --workers "$workers" \
        ${shuffle_seed:+--shuffle-seed "$shuffle_seed"}
fi

# ---- 1-6: the LJSpeech recipe on that corpus ------------------------------------------------------
if [ "$stop_stage" -ge 1 ]; then
    first=$(( stage > 1 ? stage : 1 ))
    PYTHON=$python "$ljspeech" --data-dir "$data_dir" --stage "$first" --stop-stage "$stop_stage" \
        --config "$config" --exp-dir "$exp_dir" ${ngpu:+--ngpu "$ngpu"} \
        ${max_time:+--max-time "$max_time"} ${init_vocoder:+--init-vocoder "$init_vocoder"} \
        ${init_acoustic:+--init-acoustic "$init_acoustic"}
fi
