//! Tidy checks: what ARCHITECTURE.md says about the crates that a machine
//! can check (the diagram, where heavy dependencies and process spawns may
//! be, no sqlx type in the metadata crate's API, modules that depend one
//! way, a `//!` line per file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every crate of the workspace: its name and folder.
fn crates() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if manifest.exists() {
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            );
        }
    }
    out
}

/// The names in a manifest's `[dependencies]` (and target-specific
/// dependencies), not dev- or build-dependencies.
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in read(manifest).lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]"
                || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split(['=', ' ', '.']).next().unwrap_or_default();
        if !key.is_empty() {
            out.insert(key.to_owned());
        }
    }
    out
}

/// ARCHITECTURE.md's rows of the table that follows `marker`: each cell's
/// backticked words.
fn table_after(marker: &str) -> Vec<Vec<Vec<String>>> {
    let page = read(&root().join("ARCHITECTURE.md"));
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md lost `{marker}`"));
    let mut rows = Vec::new();
    let mut seen_table = false;
    for line in page[start..].lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if seen_table {
                break;
            }
            continue;
        }
        seen_table = true;
        if line.contains("---") {
            continue;
        }
        let cells: Vec<Vec<String>> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        if cells.iter().any(|c| !c.is_empty()) {
            rows.push(cells);
        }
    }
    assert!(
        !rows.is_empty(),
        "no table after `{marker}` in ARCHITECTURE.md"
    );
    rows
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[test]
fn the_diagram_names_every_crate_and_only_real_dependencies() {
    let page = read(&root().join("ARCHITECTURE.md"));
    let start = page
        .find("```mermaid")
        .expect("ARCHITECTURE.md has a mermaid diagram");
    let diagram = &page[start..start + page[start..].find("\n```\n").expect("closed")];
    // Nodes: `id[ferry-x]`; edges: `a --> b` (a depends on b).
    let mut nodes = BTreeMap::new();
    let mut edges = Vec::new();
    for line in diagram.lines() {
        for part in line.split("-->") {
            let part = part.trim();
            if let Some((id, rest)) = part.split_once('[') {
                nodes.insert(id.trim().to_owned(), rest.trim_end_matches(']').to_owned());
            }
        }
        let ids: Vec<String> = line
            .split("-->")
            .map(|p| {
                p.trim()
                    .split('[')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .collect();
        for pair in ids.windows(2) {
            edges.push((pair[0].clone(), pair[1].clone()));
        }
    }
    let crates = crates();
    let drawn: BTreeSet<&String> = nodes.values().collect();
    let missing: Vec<&String> = crates.keys().filter(|c| !drawn.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's diagram lacks {missing:?}"
    );
    let mut wrong = Vec::new();
    for (from, to) in &edges {
        let (Some(a), Some(b)) = (nodes.get(from), nodes.get(to)) else {
            wrong.push(format!("{from} --> {to}: an id without a [crate] label"));
            continue;
        };
        let Some(dir) = crates.get(a) else {
            wrong.push(format!("{a} is no crate"));
            continue;
        };
        if !dependencies(&dir.join("Cargo.toml")).contains(b) {
            wrong.push(format!("{a} --> {b}: {a} does not depend on {b}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's diagram is wrong:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn heavy_dependencies_stay_in_the_crates_the_page_names() {
    let rows = table_after("Heavy dependencies stay in leaves");
    let crates = crates();
    let mut wrong = Vec::new();
    for row in &rows {
        let [deps, allowed] = &row[..] else {
            panic!("a heavy-dependency row has two cells: {row:?}")
        };
        for pattern in deps {
            let mut used = false;
            for (name, dir) in &crates {
                for dep in dependencies(&dir.join("Cargo.toml")) {
                    if matches(pattern, &dep) {
                        used = true;
                        if !allowed.contains(name) {
                            wrong.push(format!(
                                "{name} depends on {dep}, which only {allowed:?} may"
                            ));
                        }
                    }
                }
            }
            assert!(used, "no crate depends on `{pattern}`: drop its row");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every `.rs` file under `crates/*/src`.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in crates().values() {
        for sub in ["src", "tests", "benches"] {
            if dir.join(sub).is_dir() {
                walk(&dir.join(sub), &mut out);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    let root = root().canonicalize().unwrap();
    let path = path.canonicalize().unwrap();
    path.strip_prefix(&root).unwrap().display().to_string()
}

#[test]
fn processes_start_only_in_the_files_the_page_lists() {
    let listed: BTreeSet<String> = table_after("Processes are started (`Command::new`)")
        .into_iter()
        .filter_map(|row| row.first().and_then(|c| c.first()).cloned())
        .collect();
    let spawning: BTreeSet<String> = sources()
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .filter(|p| read(p).contains("Command::new"))
        .map(|p| relative(p))
        .collect();
    assert_eq!(
        spawning, listed,
        "files that start processes vs ARCHITECTURE.md's list"
    );
}

#[test]
fn every_source_file_opens_with_what_it_is() {
    let bare: Vec<String> = sources()
        .iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| relative(p))
        .collect();
    assert!(
        bare.is_empty(),
        "files without a `//!` first line: {bare:?}"
    );
}

#[test]
fn the_metadata_crate_exposes_no_sqlx_type() {
    // Public items (not `pub(crate)`) whose line names sqlx: a signature,
    // a field or a variant that would hand a driver type to callers.
    let dir = crates()["ferry-metadata"].join("src");
    let mut found = Vec::new();
    for path in sources().iter().filter(|p| p.starts_with(&dir)) {
        for (i, line) in read(path).lines().enumerate() {
            let code = line.trim_start();
            let public = code.starts_with("pub ") || code.contains(" pub ");
            if public && code.contains("sqlx") {
                found.push(format!("{}:{}: {}", relative(path), i + 1, code));
            }
        }
    }
    assert!(
        found.is_empty(),
        "sqlx in ferry-metadata's public API:\n{}",
        found.join("\n")
    );
}

/// The crates whose modules depend one way: those ARCHITECTURE.md's
/// "**Modules depend one way** in `a` and `b`:" names.
fn acyclic_crates() -> Vec<String> {
    let page = read(&root().join("ARCHITECTURE.md"));
    let marker = "**Modules depend one way** in ";
    let start = page
        .find(marker)
        .expect("ARCHITECTURE.md: no \"Modules depend one way\"")
        + marker.len();
    let names = &page[start..];
    let names = &names[..names.find(':').unwrap_or(names.len())];
    names
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The identifiers a `crate::` path at the start of `rest` names first:
/// `sql` for `sql::SqlStore`, `row` and `Error` for `{row::col_str, Error}`.
fn crate_path_heads(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let (mut depth, mut heads, mut start) = (0, Vec::new(), 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.retain(|h| !h.is_empty());
    heads
}

/// The source files of module `m` of the crate whose sources are in `src`.
fn module_files(src: &Path, m: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{m}.rs"));
    let dir = src.join(m);
    let mut files: Vec<PathBuf> = sources()
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .collect();
    if file.exists() {
        files.push(file);
    }
    files
}

/// A crate's top-level modules and, for each, the other modules it names
/// through `crate::` paths (in code, not comments). A name the crate root
/// re-exports from a module (`pub use m::{A, B}`, `pub use m::*`) counts as
/// that module; what the root itself defines does not count.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = read(&src.join("lib.rs"));
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect();
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((m, names)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(m) {
            continue;
        }
        if names.trim() == "*" {
            for f in module_files(src, m) {
                let code = read(&f);
                for kw in [
                    "struct", "enum", "fn", "trait", "type", "const", "static", "mod",
                ] {
                    let marker = format!("pub {kw} ");
                    for (i, _) in code.match_indices(&marker) {
                        for name in crate_path_heads(&code[i + marker.len()..]) {
                            exported.insert(name, m.to_owned());
                        }
                    }
                }
            }
        } else {
            for name in crate_path_heads(names.trim()) {
                exported.insert(name, m.to_owned());
            }
        }
    }
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut uses = BTreeSet::new();
        for f in module_files(src, m) {
            let text = read(&f);
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            let code = code.join("\n");
            for (i, _) in code.match_indices("crate::") {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                for head in crate_path_heads(&code[i + "crate::".len()..]) {
                    let target = if modules.contains(&head) {
                        Some(head)
                    } else {
                        exported.get(&head).cloned()
                    };
                    if let Some(t) = target.filter(|t| t != m) {
                        uses.insert(t);
                    }
                }
            }
        }
        graph.insert(m.clone(), uses);
    }
    graph
}

/// A cycle in `graph` (`a -> b -> a`), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'g>(
        node: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_depend_one_way_in_the_crates_the_page_names() {
    let names = acyclic_crates();
    assert!(
        !names.is_empty(),
        "ARCHITECTURE.md names no crate whose modules depend one way"
    );
    for name in &names {
        let src = crates()
            .get(name)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md: no crate `{name}`"))
            .join("src");
        let graph = module_graph(&src);
        assert!(graph.len() > 1, "{name}: no modules found in lib.rs");
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{name}: its modules use each other in a cycle: {} (move what both need into a module that uses neither)",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_module_graph_sees_uses_and_cycles() {
    let heads = |s: &str| crate_path_heads(s);
    assert_eq!(heads("sql::SqlStore;"), ["sql"]);
    assert_eq!(
        heads("{row::{col_str, col_i64},\n    Error, sql};"),
        ["row", "Error", "sql"]
    );
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()])
    );
}
