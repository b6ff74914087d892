//! The shape of the source tree: data flows one way. No file imports, directly or through
//! others, a file that imports it back, and the layers import downwards only (the TraceQL front
//! end knows nothing of plans, the planner nothing of execution, execution nothing of the wire).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`exec::search`; `` for the crate root) → source text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix("src").unwrap().with_extension("");
                let mut parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The modules `module`'s source names through `crate::` or `super::` paths (grouped imports
/// included), without itself and its ancestors.
fn imports(module: &str, source: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let own: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut paths: Vec<Vec<String>> = Vec::new();
    let regex = regex::Regex::new(r"\b(crate|super)((?:::(?:[A-Za-z_]\w*|\{[^}]*\}))+)").unwrap();
    for found in regex.captures_iter(source) {
        let mut base: Vec<String> = match &found[1] {
            "crate" => Vec::new(),
            // In a file module, `super` is the parent of the module the file is.
            _ => own[..own.len().saturating_sub(1)]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let mut rest = found[2].trim_start_matches("::");
        while let Some(tail) = rest.strip_prefix("super::") {
            base.pop();
            rest = tail;
        }
        match rest.split_once('{') {
            Some((prefix, group)) => {
                let prefix: Vec<String> = prefix
                    .split("::")
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect();
                for item in group.trim_end_matches('}').split(',') {
                    let item: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                    if !item.is_empty() && item != "self" {
                        paths.push([base.clone(), prefix.clone(), vec![item]].concat());
                    }
                }
                paths.push([base.clone(), prefix].concat());
            }
            None => paths.push(
                base.into_iter()
                    .chain(rest.split("::").map(String::from))
                    .collect(),
            ),
        }
    }
    paths
        .into_iter()
        .filter_map(|path| {
            // The longest prefix of the path that is a module.
            (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| known.contains(m))
        })
        .filter(|m| m != module && !module.starts_with(&format!("{m}::")))
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, source)| (m.clone(), imports(m, source, &known)))
        .collect()
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let graph = graph();
    assert!(graph.len() > 50, "the walk found the source tree");
    assert!(
        ["exec::top_k", "planner", "storage::schema"]
            .iter()
            .all(|m| graph["exec::search"].contains(*m)),
        "imports are found: {:?}",
        graph["exec::search"]
    );
    // A module on a cycle reaches itself.
    let mut on_cycles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = stack.pop() {
            if m == start {
                on_cycles.push(start.clone());
                break;
            }
            if seen.insert(m) {
                stack.extend(graph[m].iter());
            }
        }
    }
    assert!(
        on_cycles.is_empty(),
        "modules on import cycles: {on_cycles:?}"
    );
}

#[test]
fn layers_import_downwards_only() {
    let graph = graph();
    let forbidden: [(&str, &[&str]); 4] = [
        ("traceql", &["planner", "exec", "api", "storage", "ingest"]),
        ("planner", &["exec", "api", "ingest"]),
        ("storage", &["planner", "exec", "api", "ingest"]),
        ("exec", &["api", "ingest", "app", "cli"]),
    ];
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        let layer = module.split("::").next().unwrap();
        for (from, not) in forbidden {
            if layer != from {
                continue;
            }
            for import in imports {
                if not.contains(&import.split("::").next().unwrap()) {
                    wrong.push(format!("{module} imports {import}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
