"""Checks on deploy/ that no off-the-shelf tool makes: the sidecar.toml files
against the keys the binary accepts, and the rendered manifests against the
rules in deploy/README.md ("What check.sh enforces").

Usage: check_manifests.py REPO_ROOT RENDERED_DIR
RENDERED_DIR holds one `kubectl kustomize` output per overlay, named
<overlay>.yaml. Prints every problem found and exits 1 if there was any.
"""

import re
import sys
import tomllib
from pathlib import Path

import yaml

KUBERNETES = Path("deploy/kubernetes")
BASE_TOML = KUBERNETES / "base/sidecar.toml"
GATEWAY_TOML = KUBERNETES / "overlays/gateway/listen-on-pod-ip/sidecar.toml"
# Where the binary lists the keys a configuration file may hold.
KEYS_SOURCE = Path("src/config/file.rs")
CONFIG_PATH = "/etc/ges-sidecar/sidecar.toml"
ADMIN_PORT = 9901


def main() -> int:
    root, rendered = Path(sys.argv[1]), Path(sys.argv[2])
    problems: list[str] = []
    base = check_tomls(root, problems)
    for path in sorted(rendered.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        check_manifests(path.stem, docs, base, problems)
    for problem in problems:
        print(f"    {problem}")
    return 1 if problems else 0


# === sidecar.toml ===


def check_tomls(root: Path, problems: list[str]) -> dict:
    base = load_toml(root / BASE_TOML, problems)
    gateway = load_toml(root / GATEWAY_TOML, problems)

    keys = known_keys(root / KEYS_SOURCE)
    if keys is None:
        print(f"    note: no KEYS list found in {KEYS_SOURCE}; TOML keys not checked")
    for name, table in ((BASE_TOML, base), (GATEWAY_TOML, gateway)):
        for key in table:
            if keys is not None and key not in keys:
                problems.append(f"{name}: `{key}` is not a key the binary accepts")
        if ("upstream" in table) == ("discover" in table):
            problems.append(f"{name}: give exactly one of `upstream` and `discover`")
        if table.get("admin-listen") != f"0.0.0.0:{ADMIN_PORT}":
            problems.append(f"{name}: admin-listen must be 0.0.0.0:{ADMIN_PORT} (probes)")

    if base.get("listen") != "127.0.0.1:8080":
        problems.append(f"{BASE_TOML}: listen must stay on loopback (127.0.0.1:8080)")
    if gateway.get("listen") != "0.0.0.0:8080":
        problems.append(f"{GATEWAY_TOML}: listen must be 0.0.0.0:8080")
    base_rest = {k: v for k, v in base.items() if k != "listen"}
    gateway_rest = {k: v for k, v in gateway.items() if k != "listen"}
    if base_rest != gateway_rest:
        problems.append(f"{GATEWAY_TOML} differs from {BASE_TOML} in more than `listen`")

    namespace = yaml.safe_load((root / KUBERNETES / "base/kustomization.yaml").read_text())
    namespace = namespace.get("namespace")
    discover = base.get("discover", "")
    if discover and f".{namespace}.svc." not in discover:
        problems.append(f"{BASE_TOML}: discover `{discover}` is not in namespace {namespace}")
    return base


def load_toml(path: Path, problems: list[str]) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        problems.append(f"{path}: {e}")
        return {}


def known_keys(source: Path) -> set[str] | None:
    try:
        text = source.read_text()
    except OSError:
        return None
    found = re.search(r"pub const KEYS: &\[&str\] = &\[(.*?)\];", text, re.S)
    return set(re.findall(r'"([a-z-]+)"', found.group(1))) if found else None


def seconds(value: str) -> float | None:
    """The subset of humantime durations used here (500ms, 5s, 2m), or None."""
    found = re.fullmatch(r"(\d+)\s*(ms|s|m)", str(value).strip())
    if not found:
        return None
    number, unit = found.groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60}[unit]


# === rendered manifests ===


def check_manifests(overlay: str, docs: list[dict], base: dict, problems: list[str]) -> None:
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{overlay}: {kind.lower()}/{meta['name']}"
        labels = meta.get("labels", {})
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/component"):
            if label not in labels:
                problems.append(f"{where}: no label {label}")
        if kind == "Deployment":
            check_pod(where, overlay, doc["spec"]["template"]["spec"], base, problems)


def check_pod(where: str, overlay: str, pod: dict, base: dict, problems: list[str]) -> None:
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken must be false")
    # The binary's defaults are 5s and 10s.
    delay = seconds(base.get("drain-delay", "5s"))
    timeout = seconds(base.get("shutdown-timeout", "10s"))
    if delay is None or timeout is None:
        problems.append(f"{BASE_TOML}: drain-delay or shutdown-timeout is not like 5s")
    elif pod.get("terminationGracePeriodSeconds", 30) <= delay + timeout:
        problems.append(
            f"{where}: terminationGracePeriodSeconds must exceed {delay + timeout:g}s"
        )

    pod_sc = pod.get("securityContext", {})
    containers = [(c, False) for c in pod.get("initContainers", [])]
    containers += [(c, True) for c in pod.get("containers", [])]
    sidecars = 0
    for container, regular in containers:
        name = f"{where}: container {container['name']}"
        check_container(name, container, pod_sc, problems)
        if container["image"].split(":")[0].endswith("ges-sidecar"):
            sidecars += 1
            check_sidecar(name, overlay, container, regular, pod, problems)
    if sidecars != 1:
        problems.append(f"{where}: {sidecars} ges-sidecar containers, expected 1")


def check_container(name: str, c: dict, pod_sc: dict, problems: list[str]) -> None:
    sc = c.get("securityContext", {})
    merged = {**pod_sc, **sc}
    if merged.get("runAsNonRoot") is not True:
        problems.append(f"{name}: runAsNonRoot must be true")
    for field in ("runAsUser", "runAsGroup"):
        if not isinstance(merged.get(field), int) or merged[field] == 0:
            problems.append(f"{name}: {field} must be a non-zero number")
    if merged.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccompProfile must be RuntimeDefault")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{name}: allowPrivilegeEscalation must be false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append(f"{name}: capabilities must drop ALL")
    resources = c.get("resources", {})
    for field in ("requests.cpu", "requests.memory", "limits.memory"):
        group, key = field.split(".")
        if key not in resources.get(group, {}):
            problems.append(f"{name}: no resources.{field}")


def check_sidecar(
    name: str, overlay: str, c: dict, regular: bool, pod: dict, problems: list[str]
) -> None:
    native = overlay == "native-sidecar"
    if native and (regular or c.get("restartPolicy") != "Always"):
        problems.append(f"{name}: must be an init container with restartPolicy Always")
    if not native and not regular:
        problems.append(f"{name}: must be an ordinary container in this overlay")

    if " ".join(c.get("args", [])) != f"--config {CONFIG_PATH}":
        problems.append(f"{name}: args must be --config {CONFIG_PATH}")
    config_dir = CONFIG_PATH.rsplit("/", 1)[0]
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == config_dir]
    if len(mounts) != 1 or "subPath" in mounts[0]:
        problems.append(f"{name}: the ConfigMap must be mounted as the directory {config_dir}")
    else:
        volume = next((v for v in pod.get("volumes", []) if v["name"] == mounts[0]["name"]), {})
        if not volume.get("configMap", {}).get("name", "").startswith("ges-sidecar-"):
            problems.append(f"{name}: {config_dir} is not the generated ges-sidecar ConfigMap")

    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("admin") != ADMIN_PORT:
        problems.append(f"{name}: no port named admin on {ADMIN_PORT}")
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("admin", ADMIN_PORT):
            problems.append(f"{name}: {probe} must GET {path} on the admin port")


if __name__ == "__main__":
    sys.exit(main())
