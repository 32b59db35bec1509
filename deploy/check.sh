#!/usr/bin/env bash
# Static checks of the deployment files: YAML style, the Kustomize overlays
# rendered and validated against the Kubernetes 1.29 schemas and the newest
# bundled ones, the repository's own rules for the manifests and sidecar.toml,
# the Dockerfile, and (unless SKIP_CHECKOV=1) checkov.
#
# Needs python3 (3.11 or later) and PyPI; installs everything else into
# virtualenvs under ${TMPDIR:-/tmp}, reused while the pinned requirements are
# unchanged. Builds and runs no container. Runs every check, then exits 1 if
# any failed.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

deploy=deploy
overlays=(native-sidecar classic-sidecar gateway)
# The oldest Kubernetes the native sidecar form runs on.
oldest_kubernetes=1.29.0

cache=${TMPDIR:-/tmp}/ges-sidecar-deploy-check
work=$(mktemp -d "${TMPDIR:-/tmp}/ges-sidecar-deploy-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

failures=()

# Runs one named check and records whether it passed.
check() {
    local name=$1
    shift
    echo "==> $name"
    if "$@"; then
        echo "    ok"
    else
        echo "    FAILED: $name"
        failures+=("$name")
    fi
}

# Creates (or reuses) a virtualenv holding the pins of requirements file $2.
# Prints the venv's bin directory.
venv() {
    local name=$1 requirements=$2 digest dir
    digest=$({ python3 --version; cat "$requirements"; } | sha256sum | cut -c1-12)
    dir=$cache/$name-$digest
    if [[ ! -e $dir/.complete ]]; then
        # Older pins' virtualenvs, and this one if an install was cut short.
        rm -rf "$cache/$name"-*
        mkdir -p "$cache"
        python3 -m venv "$dir" >&2
        "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input \
            --requirement "$requirements" >&2
        touch "$dir/.complete"
    fi
    echo "$dir/bin"
}

# A Debian without python3-venv cannot make a virtualenv; add it when we can.
ensure_python() {
    if python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
        2>/dev/null; then
        return
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "==> installing python3 and python3-venv with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3 python3-venv >/dev/null
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "deploy/check.sh needs python3 3.11 or later (for tomllib)" >&2
        exit 1
    }
}

# --- tools ---

ensure_python
echo "==> installing tools (pinned in $deploy/check-requirements.txt)"
bin=$(venv tools "$deploy/check-requirements.txt")
checkov_bin=
if [[ ${SKIP_CHECKOV:-0} != 1 ]]; then
    echo "==> installing checkov (pinned in $deploy/checkov-requirements.txt)"
    checkov_bin=$(venv checkov "$deploy/checkov-requirements.txt")
fi
newest_kubernetes=$("$bin/python" -c \
    'from kubernetes_validate.utils import latest_version; print(latest_version())')
echo "    yamllint $("$bin/yamllint" --version | cut -d' ' -f2)"
echo "    kubernetes-validate $("$bin/kubernetes-validate" --version)" \
    "(schemas for Kubernetes $oldest_kubernetes to $newest_kubernetes used)"
echo "    kubectl $("$bin/kubectl" version --client | sed -n 's/^Client Version: //p')"
echo "    hadolint $("$bin/hadolint" --version | awk '{print $NF}')"
echo "    shellcheck $("$bin/shellcheck" --version | sed -n 's/^version: //p')"
if [[ -n $checkov_bin ]]; then
    echo "    checkov $("$checkov_bin/checkov" --version)"
fi

# The checks need no network. Where a network namespace can be made, run them
# in one with no interfaces, so that a tool that tries to fetch fails loudly.
offline=()
if unshare --net true 2>/dev/null; then
    offline=(unshare --net)
    echo "    the checks run without network (unshare --net)"
else
    echo "    the checks run with network: unshare --net is not allowed here"
fi
export KUBECONFIG=/dev/null

# --- checks ---

yaml_style() {
    "${offline[@]}" "$bin/yamllint" -s -c "$deploy/.yamllint" "$deploy"
}

# Renders base and each overlay into $work/rendered/<name>.yaml.
render() {
    local name dir ok=0
    mkdir -p "$work/rendered"
    for name in base "${overlays[@]}"; do
        if [[ $name == base ]]; then
            dir=$deploy/kubernetes/base
        else
            dir=$deploy/kubernetes/overlays/$name
        fi
        if "${offline[@]}" "$bin/kubectl" kustomize "$dir" >"$work/rendered/$name.yaml"; then
            echo "    $dir: $(grep -c '^kind:' "$work/rendered/$name.yaml") resources"
        else
            ok=1
        fi
    done
    return $ok
}

# kubernetes-validate only warns, and exits 0, for a kind or apiVersion it has
# no schema for; such a warning fails here.
validate() {
    local file out status=0
    for file in "$work"/rendered/*.yaml; do
        out=$("${offline[@]}" "$bin/kubernetes-validate" --strict --quiet \
            -k "$oldest_kubernetes" -k "$newest_kubernetes" "$file" 2>&1) || status=1
        if [[ -n $out ]]; then
            printf '    %s\n' "${out//$'\n'/$'\n'    }"
            status=1
        fi
    done
    if [[ $status -eq 0 ]]; then
        echo "    $(cat "$work"/rendered/*.yaml | grep -c '^kind:') resources valid" \
            "against $oldest_kubernetes and $newest_kubernetes (strict)"
    fi
    return $status
}

repository_rules() {
    "${offline[@]}" "$bin/python" "$deploy/check_manifests.py" . "$work/rendered"
}

dockerfile_lint() {
    "${offline[@]}" "$bin/hadolint" --config "$deploy/.hadolint.yaml" "$deploy/Dockerfile"
}

# Docker is not run here, so check statically that the build stage copies
# what `cargo build` will read: each COPY source exists, and the targets and
# build script Cargo.toml may declare are copied.
dockerfile_inputs() {
    local src pair target dir ok=0
    while read -r src; do
        [[ -e $src ]] || { echo "    COPY source $src does not exist"; ok=1; }
    done < <(awk '$1 == "COPY" && !/--from=/ {
        for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$deploy/Dockerfile")
    for pair in bench:benches test:tests example:examples; do
        target=${pair%%:*}
        dir=${pair#*:}
        if grep -q "^\[\[$target\]\]" Cargo.toml \
            && ! grep -Eq "^COPY +$dir " "$deploy/Dockerfile"; then
            echo "    Cargo.toml declares [[$target]] targets; COPY $dir in the Dockerfile"
            ok=1
        fi
    done
    if { [[ -e build.rs ]] || grep -Eq '^build *=' Cargo.toml; } \
        && ! grep -Eq '^COPY +build' "$deploy/Dockerfile"; then
        echo "    the package has a build script; COPY it in the Dockerfile"
        ok=1
    fi
    return $ok
}

shell_lint() {
    "${offline[@]}" "$bin/shellcheck" "$deploy/check.sh"
}

checkov_scan() {
    local file files=(--file "$deploy/Dockerfile")
    for file in "$work"/rendered/*.yaml; do
        files+=(--file "$file")
    done
    "${offline[@]}" "$checkov_bin/checkov" --config-file "$deploy/.checkov.yaml" "${files[@]}"
}

check "yamllint -s (all YAML under $deploy/)" yaml_style
check "kubectl kustomize (base and ${overlays[*]})" render
check "kubernetes-validate --strict ($oldest_kubernetes, $newest_kubernetes)" validate
check "repository rules ($deploy/check_manifests.py)" repository_rules
check "hadolint $deploy/Dockerfile" dockerfile_lint
check "Dockerfile copies what the build reads" dockerfile_inputs
check "shellcheck $deploy/check.sh" shell_lint
if [[ -n $checkov_bin ]]; then
    check "checkov (rendered manifests and Dockerfile)" checkov_scan
else
    echo "==> checkov: skipped (SKIP_CHECKOV=1)"
fi

echo "deploy/check.sh: $((SECONDS - started))s"
if ((${#failures[@]})); then
    echo "FAILED: ${failures[*]}"
    exit 1
fi
echo "all deployment checks passed"
