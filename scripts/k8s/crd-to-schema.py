#!/usr/bin/env python3
"""crd-to-schema.py: a CustomResourceDefinition's openAPIV3Schema (of its
served storage version) as a JSON Schema (draft 2020-12), so
scripts/k8s-check.sh can validate custom resources offline.

    git --git-dir=KEDA show v2.20.2:config/crd/bases/keda.sh_scaledobjects.yaml \\
      | target/k8s-venv/bin/python scripts/k8s/crd-to-schema.py \\
          --source "kedacore/keda v2.20.2 (68a5b50)" \\
      > deploy/kubernetes/schemas/scaledobject-keda.sh-v1alpha1.json

Reads the CRD on stdin (needs PyYAML: the k8s-check venv has it). What the
API server does, as far as a schema can say it:
- an object with `properties` refuses other fields (the server prunes them;
  `kubectl apply --validate=strict` refuses them), unless the CRD says
  `x-kubernetes-preserve-unknown-fields`;
- `x-kubernetes-int-or-string` is an integer or a string; `nullable` adds null;
- apiVersion and kind must be the CRD's, metadata.name a string.
CEL rules (`x-kubernetes-validations`) cannot run here: they are dropped and
listed in the output's `$comment`. Descriptions are dropped (size).
"""

import argparse
import json
import sys

import yaml

DROPPED = {
    "description",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
}


def convert(node, path, cel):
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in DROPPED or key.startswith("x-kubernetes-int-or-string") or key == "nullable":
            continue
        if key == "x-kubernetes-validations":
            cel.extend(f"{path or '.'}: {rule.get('message') or rule['rule']}" for rule in value)
            continue
        if key == "x-kubernetes-preserve-unknown-fields":
            continue
        if key == "properties":
            out[key] = {name: convert(sub, f"{path}.{name}", cel) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = convert(value, f"{path}[]", cel)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(sub, path, cel) for sub in value]
        elif key == "not":
            out[key] = convert(value, path, cel)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="where the CRD came from (recorded)")
    args = parser.parse_args()
    crd = yaml.safe_load(sys.stdin)
    if crd.get("kind") != "CustomResourceDefinition":
        sys.exit("crd-to-schema: stdin is not a CustomResourceDefinition")
    spec = crd["spec"]
    versions = [v for v in spec["versions"] if v.get("served") and v.get("storage")]
    if len(versions) != 1:
        sys.exit("crd-to-schema: expected one served storage version")
    version = versions[0]
    cel = []
    schema = convert(version["schema"]["openAPIV3Schema"], "", cel)
    kind = spec["names"]["kind"]
    api_version = f"{spec['group']}/{version['name']}"
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}},
    }
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    comment = f"{kind} {api_version} from {args.source}, by scripts/k8s/crd-to-schema.py."
    if cel:
        comment += " Not checked offline (CEL): " + "; ".join(cel)
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": comment,
        "title": f"{kind} ({api_version})",
        **schema,
    }
    json.dump(document, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
