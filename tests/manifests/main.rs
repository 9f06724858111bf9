//! The Kubernetes manifests (deploy/kubernetes) against the configuration,
//! offline: every variable they set (`env`, and the ConfigMap handed over
//! with `envFrom`) is one `Settings` reads, no container sets a secret both
//! ways, and every `*_FILE` names a file a mounted Secret volume provides,
//! from a key the example Secret has. Their schemas are
//! scripts/k8s-check.sh's.
//!
//!
//! The YAML is read by `yaml`, a small parser of the block style they use.

mod yaml;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use flash_sale::config::Settings;
use yaml::{Node, parse};

/// Every document of deploy/kubernetes/*.yaml, with its file's name.
fn manifests() -> Vec<(String, Node)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    let mut documents = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(&path).expect("a readable manifest");
        documents.extend(
            parse(&name, &text)
                .into_iter()
                .map(|doc| (name.clone(), doc)),
        );
    }
    documents
}

fn of_kind<'a>(
    documents: &'a [(String, Node)],
    kind: &'a str,
) -> impl Iterator<Item = &'a (String, Node)> {
    documents
        .iter()
        .filter(move |(_, doc)| doc.str("kind") == Some(kind))
}

fn known(name: &str) -> bool {
    // RUST_LOG is tracing's filter, read by the subscriber, not Settings.
    name == "RUST_LOG" || Settings::variable_names().iter().any(|n| n == name)
}

#[test]
fn manifests_set_only_variables_the_config_reads_and_mount_every_file() {
    let documents = manifests();
    let mut problems = Vec::new();

    // ConfigMaps: their keys become variables (envFrom).
    let mut config_maps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (file, doc) in of_kind(&documents, "ConfigMap") {
        let name = doc
            .get("metadata")
            .and_then(|m| m.str("name"))
            .unwrap_or("?");
        let keys = match doc.get("data") {
            Some(Node::Map(entries)) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => BTreeSet::new(),
        };
        for key in &keys {
            if !known(key) {
                problems.push(format!("{file}: ConfigMap {name}: {key} is no variable"));
            }
        }
        config_maps.insert(name, keys);
    }
    // The example Secret's keys: what volumes and KEDA may ask for.
    let secret_keys: BTreeSet<&str> = of_kind(&documents, "Secret")
        .flat_map(|(_, doc)| match doc.get("stringData") {
            Some(Node::Map(entries)) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();

    let mut nodes = Vec::new();
    let mut containers_seen = 0;
    let mut files_seen = 0;
    for (file, doc) in &documents {
        nodes.clear();
        doc.walk(&mut nodes);
        for &node in &nodes {
            // A KEDA TriggerAuthentication's secret keys.
            for target in node.list("secretTargetRef") {
                let key = target.str("key").unwrap_or("?");
                if !secret_keys.contains(key) {
                    problems.push(format!(
                        "{file}: secretTargetRef key {key} is not in the example Secret"
                    ));
                }
            }
            // A pod spec: its volumes, then each container.
            if node.get("containers").is_none() {
                continue;
            }
            let mut volumes: BTreeMap<&str, Option<BTreeSet<&str>>> = BTreeMap::new();
            for volume in node.list("volumes") {
                let name = volume.str("name").unwrap_or("?");
                let Some(secret) = volume.get("secret") else {
                    volumes.insert(name, None);
                    continue;
                };
                let mut paths = BTreeSet::new();
                for item in secret.list("items") {
                    let key = item.str("key").unwrap_or("?");
                    if !secret_keys.contains(key) {
                        problems.push(format!(
                            "{file}: volume {name}: key {key} is not in the example Secret"
                        ));
                    }
                    paths.insert(item.str("path").unwrap_or("?"));
                }
                volumes.insert(name, Some(paths));
            }
            let all = node
                .list("containers")
                .iter()
                .chain(node.list("initContainers"));
            for container in all {
                containers_seen += 1;
                let who = format!("{file}: container {}", container.str("name").unwrap_or("?"));
                let mut set: BTreeSet<&str> = BTreeSet::new();
                for source in container.list("envFrom") {
                    if source.get("secretRef").is_some() || source.str("prefix").is_some() {
                        problems.push(format!("{who}: envFrom takes unprefixed ConfigMaps only"));
                    }
                    if let Some(name) = source.get("configMapRef").and_then(|r| r.str("name")) {
                        match config_maps.get(name) {
                            Some(keys) => set.extend(keys),
                            None => problems.push(format!("{who}: no ConfigMap {name} here")),
                        }
                    }
                }
                for var in container.list("env") {
                    let name = var.str("name").unwrap_or("?");
                    if !known(name) {
                        problems.push(format!("{who}: {name} is no variable"));
                    }
                    set.insert(name);
                    if let Some(reference) =
                        var.get("valueFrom").and_then(|v| v.get("configMapKeyRef"))
                    {
                        let (map, key) = (
                            reference.str("name").unwrap_or("?"),
                            reference.str("key").unwrap_or("?"),
                        );
                        if !config_maps.get(map).is_some_and(|keys| keys.contains(key)) {
                            problems.push(format!(
                                "{who}: {name}: no key {key} in a ConfigMap {map} here"
                            ));
                        }
                    }
                    if !name.ends_with("_FILE") {
                        continue;
                    }
                    files_seen += 1;
                    let Some(path) = var.str("value") else {
                        problems.push(format!("{who}: {name} has no literal path"));
                        continue;
                    };
                    let provided = container.list("volumeMounts").iter().any(|mount| {
                        let (Some(dir), Some(volume)) = (mount.str("mountPath"), mount.str("name"))
                        else {
                            return false;
                        };
                        let Some(file) = path
                            .strip_prefix(dir.trim_end_matches('/'))
                            .and_then(|p| p.strip_prefix('/'))
                        else {
                            return false;
                        };
                        // Listed items: exactly those files; no list: every key.
                        match volumes.get(volume) {
                            Some(Some(paths)) if !paths.is_empty() => paths.contains(file),
                            Some(Some(_)) => true,
                            _ => false,
                        }
                    });
                    if !provided {
                        problems.push(format!(
                            "{who}: {name}={path} is in no mounted Secret volume"
                        ));
                    }
                }
                // Settings refuses a secret set both ways.
                for name in &set {
                    if let Some(base) = name.strip_suffix("_FILE")
                        && set.contains(base)
                    {
                        problems.push(format!("{who}: both {base} and {name}"));
                    }
                }
            }
        }
    }
    // Not vacuous: the api, worker, scheduler and migrate containers, and
    // the api's five secret files among the others.
    assert!(
        containers_seen >= 4,
        "only {containers_seen} containers found"
    );
    assert!(files_seen >= 5, "only {files_seen} *_FILE variables found");
    assert!(
        problems.is_empty(),
        "deploy/kubernetes:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_parser_reads_lists_of_maps() {
    let docs = parse(
        "test.yaml",
        "a: 1 # note\nenv:\n  - name: X\n    value: \"y # z\"\n  - name: Y\nlist:\n- b\n- 'c'\n---\nk: v\n",
    );
    assert_eq!(docs.len(), 2);
    let env = docs[0].list("env");
    assert_eq!(env.len(), 2);
    assert_eq!(env[0].str("value"), Some("y # z"));
    assert_eq!(env[1].str("name"), Some("Y"));
    assert_eq!(docs[0].list("list").len(), 2);
    assert_eq!(docs[1].str("k"), Some("v"));
}
