#!/bin/sh
# The pipeline runner's commands (docker/pipeline.Dockerfile); run in the DVC workspace (/app).
#   auto     pull this dvc.lock's models from the DVC remote, or train them (`dvc repro`) and push
#            them when the remote lacks them; then publish (the default command)
#   pull     pull the models (only the served models/ outs) from the DVC remote, failing if it lacks
#            them; then publish
#   repro    `dvc repro`, `dvc push --run-cache`, then publish
#   publish  copy the served models/ outs and dvc.lock to $MODELS_BUNDLE_DIR as a release, make it `current`
#   anything else runs as a command, e.g. `dvc status` or `dvc repro -s evaluate`
# DVC_S3_ENDPOINT_URL: an S3-compatible endpoint for the default remote (empty: AWS S3 itself).
set -eu

HERE=$(dirname "$0")
MODEL_STAGES="tfidf train_text train_image train_baseline train_fusion"

# Send the default remote's requests to DVC_S3_ENDPOINT_URL. botocore (under DVC's s3fs) reads the
# endpoint from AWS_ENDPOINT_URL_S3, so no config file is written: the root filesystem may be
# read-only (Kubernetes). With "create-bucket", also make the remote's bucket if it is missing.
configure_remote() {
    [ -n "${DVC_S3_ENDPOINT_URL:-}" ] || return 0
    export AWS_ENDPOINT_URL_S3="$DVC_S3_ENDPOINT_URL"
    if [ "${1:-}" = create-bucket ]; then
        remote=$(dvc config core.remote)
        python "$HERE/s3_bucket.py" "$DVC_S3_ENDPOINT_URL" "$(dvc config "remote.$remote.url")"
    fi
}

# The models/ outs of the MODEL_STAGES in dvc.yaml: what the API loads (not the training-only
# models/ outs such as feature extractors, nor the stages' other outs such as data/probs).
served_outs() {
    # shellcheck disable=SC2086  # one argument per stage name
    python - $MODEL_STAGES <<'PY'
import sys
import yaml
stages = yaml.safe_load(open("dvc.yaml", encoding="utf-8"))["stages"]
for stage in sys.argv[1:]:
    for out in stages[stage].get("outs", []):
        path = out if isinstance(out, str) else next(iter(out))
        if path.startswith("models/"):
            print(path)
PY
}

# A release folder named after the models' content, holding them and the dvc.lock that describes
# them (the API reads the version from it); `current` is a symlink, swapped by a rename so that a
# reloading API never sees half a release.
publish() {
    bundle="${MODELS_BUNDLE_DIR:?set MODELS_BUNDLE_DIR}"
    outs=$(served_outs)
    # shellcheck disable=SC2086  # one argument per out
    digest=$(find $outs -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
    release="release-$digest"
    mkdir -p "$bundle"
    if [ ! -d "$bundle/$release" ]; then
        incoming="$bundle/.incoming-$$"
        rm -rf "$incoming"
        for out in $outs; do
            mkdir -p "$incoming/$(dirname "$out")"
            cp -RL "$out" "$incoming/$out"
        done
        cp dvc.lock "$incoming/dvc.lock"
        # The evaluate stage's scores of these models, for the API's console (/reports/evaluation).
        for report in metrics/evaluate plots/evaluate; do
            if [ -e "$report" ]; then
                mkdir -p "$incoming/$(dirname "$report")"
                cp -RL "$report" "$incoming/$report"
            fi
        done
        mv "$incoming" "$bundle/$release"
    fi
    ln -sfn "$release" "$bundle/.current-$$"
    mv -T "$bundle/.current-$$" "$bundle/current"
    echo "published $bundle/$release as $bundle/current"
}

# Every command, ad-hoc ones included (`dvc push`, `dvc status -c`), talks to the same remote.
case "${1:-auto}" in
    auto | repro) configure_remote create-bucket ;;
    *) configure_remote ;;
esac

case "${1:-auto}" in
    auto)
        # shellcheck disable=SC2046  # one argument per out
        if dvc pull $(served_outs); then
            # The local cache may hold models the remote lost (the compose stack's moto is in memory).
            # shellcheck disable=SC2046
            dvc push $(served_outs)
        else
            echo "the remote lacks the models of this dvc.lock: training them (dvc repro)"
            dvc repro
            dvc push --run-cache
        fi
        publish ;;
    pull)
        # shellcheck disable=SC2046  # one argument per out
        dvc pull $(served_outs)
        publish ;;
    repro)
        dvc repro
        dvc push --run-cache
        publish ;;
    publish)
        publish ;;
    *)
        exec "$@" ;;
esac
