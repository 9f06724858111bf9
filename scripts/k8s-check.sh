#!/usr/bin/env bash
# k8s-check.sh: validates deploy/kubernetes offline, without a cluster.
#   - built-in kinds: kubernetes-validate (Kubernetes' own schemas, bundled
#     in the package) against Kubernetes $K8S_VERSION, strict: a field the
#     API does not know is an error;
#   - KEDA's ScaledObject and TriggerAuthentication: python jsonschema
#     against deploy/kubernetes/schemas (KEDA's CRDs, vendored; see the
#     README there);
#   - kustomization.yaml: local files only, every manifest listed but
#     secret.example.yaml.
# A kind with no schema is an error, never skipped. Duplicate YAML keys are
# errors too. One line per file; exit 0 only when every file passed.
#
#   scripts/k8s-check.sh [DIR]     # DIR: deploy/kubernetes, or a copy of it
#
# Needs python3 with venv, and PyPI the first time (the venv in
# target/k8s-venv, under CARGO_TARGET_DIR when set, is reused while its
# pins hold). Exit 77 (skip) when pip cannot reach an index at all.
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../deploy/kubernetes}")
cd "$(dirname "$0")/.."

# Pinned so a new release cannot fail (or pass) CI on its own.
# kubernetes-validate 1.37.0 bundles the schemas of Kubernetes 1.25-1.37.
PINS=(kubernetes-validate==1.37.0 jsonschema==4.26.0)
K8S_VERSION=1.33
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
VENV=$TARGET/k8s-venv

if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$VENV/pins" 2>/dev/null)" != "${PINS[*]}" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    if ! log=$("$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" 2>&1); then
        rm -rf "$VENV"
        printf '%s\n' "$log" >&2
        # Unreachable index (no network): pip saw no version of the package
        # at all, or said why. Anything else (a pin that does not exist, a
        # broken python) fails.
        if grep -qE 'from versions: none\)|NewConnectionError|Max retries exceeded|Could not fetch URL|Temporary failure in name resolution|Network is unreachable|ConnectTimeoutError' <<<"$log"; then
            echo "k8s-check: SKIP: cannot install ${PINS[*]} (no network?)"
            exit 77
        fi
        echo "k8s-check: FAILED: pip install ${PINS[*]}"
        exit 1
    fi
    echo "${PINS[*]}" >"$VENV/pins"
fi

"$VENV/bin/python" - "$K8S_VERSION" "$DIR" <<'EOF'
import glob, json, os, sys
from importlib.metadata import version

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from kubernetes_validate.version import __version__ as kv_version

k8s_version, root = sys.argv[1], sys.argv[2]
schemas = os.path.join(root, "schemas")


class StrictLoader(yaml.SafeLoader):
    """Refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def custom_schema(doc):
    group, _, version = doc["apiVersion"].partition("/")
    path = os.path.join(schemas, f"{doc['kind'].lower()}-{group}-{version}.json")
    if not os.path.exists(path):
        raise LookupError(f"no schema for {doc['kind']} {doc['apiVersion']} (looked for {path})")
    with open(path) as f:
        return json.load(f)


def check(doc):
    """The problems of one object (empty: valid)."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return ["not a Kubernetes object (apiVersion and kind)"]
    group = doc["apiVersion"].rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):
        # A custom resource (keda.sh/...): the vendored CRD schema.
        try:
            schema = custom_schema(doc)
        except LookupError as e:
            return [str(e)]
        validator = jsonschema.validators.validator_for(schema)(schema)
        return [f"{'.'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))]
    try:
        kv.validate(doc, k8s_version, strict=True)
        return []
    except kv.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '.'}: {e.message}"]
    except (kv.SchemaNotFoundError, kv.VersionNotSupportedError, kv.InvalidSchemaError) as e:
        return [e.message]


def check_kustomization(doc, files):
    problems = []
    if not isinstance(doc, dict) or doc.get("kind") != "Kustomization":
        return ["kind is not Kustomization"], 0
    for key in ("bases", "components", "helmCharts", "helmChartInflationGenerator", "remoteResources"):
        if key in doc:
            problems.append(f"{key}: not allowed (local files only)")
    listed = doc.get("resources", [])
    for item in listed:
        if "://" in item or item.startswith(("github.com", "git@")) or "/" in item or not item.endswith(".yaml"):
            problems.append(f"resources: {item}: not a file of this directory")
        elif not os.path.isfile(os.path.join(root, item)):
            problems.append(f"resources: {item}: no such file")
    expected = {os.path.basename(f) for f in files} - {"kustomization.yaml", "secret.example.yaml"}
    for missing in sorted(expected - set(listed)):
        problems.append(f"resources: {missing} is not listed")
    if "secret.example.yaml" in listed:
        problems.append("resources: secret.example.yaml must not be applied")
    return problems, len(listed)


files = sorted(glob.glob(os.path.join(root, "*.yaml")))
failed = 0
print(f"k8s-check: kubernetes-validate {kv_version} (Kubernetes {k8s_version}, strict), "
      f"jsonschema {version('jsonschema')}")
for path in files:
    name = path if os.path.relpath(path).startswith("..") else os.path.relpath(path)
    try:
        with open(path) as f:
            docs = [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        print(f"FAIL {name}: {str(e).splitlines()[0]} {getattr(e, 'problem_mark', '')}".rstrip())
        failed += 1
        continue
    if os.path.basename(path) == "kustomization.yaml":
        problems, count = check_kustomization(docs[0], files) if len(docs) == 1 else (["one document expected"], 0)
        what = [f"Kustomization ({count} local resources)"]
    else:
        problems, what = [], []
        for doc in docs:
            label = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}" if isinstance(doc, dict) else "?"
            what.append(label)
            problems += [f"{label}: {p}" for p in check(doc)]
    if not docs:
        problems.append("no objects")
    if problems:
        failed += 1
        print(f"FAIL {name}: " + "; ".join(problems))
    else:
        print(f"ok   {name}: {', '.join(what)}")
print(f"k8s-check: {'passed' if not failed else 'FAILED'}: {len(files) - failed} of {len(files)} files valid")
sys.exit(1 if failed else 0)
EOF
