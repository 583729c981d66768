//! Every link of the README and the Markdown docs resolves: relative links (and
//! anchors into Markdown files) point at files of the repository, and the README,
//! which is also the crate's rustdoc front page and so is read on docs.rs where
//! relative links break, links into the repository only by absolute URL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};

/// The repository as Cargo.toml names it; README links into it must resolve locally.
const REPOSITORY: &str = "https://github.com/consent-guard/consent-guard";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files checked: the top-level ones and everything under `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["README.md", "CHANGELOG.md", "BENCHMARKS.md"].iter().map(|f| root().join(f)).filter(|p| p.exists()).collect();
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The targets of inline links `[text](target)` outside code blocks and code spans,
/// with their 1-based lines.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans, which may contain `](` legitimately.
        let mut plain = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                plain.push('x');
            } else if !in_code {
                plain.push(c);
            } else {
                plain.push('x');
            }
        }
        let mut rest = plain.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((index + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut fenced = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.push(slug(line.trim_start_matches('#')));
        }
    }
    found
}

/// Why a link does not resolve, if it does not.
fn check(from: &Path, target: &str) -> Option<String> {
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = if path.is_empty() { from.to_path_buf() } else { from.parent().unwrap().join(path) };
    if !file.exists() {
        return Some(format!("`{target}`: no file {}", file.display()));
    }
    if let Some(anchor) = anchor {
        if file.extension().is_some_and(|e| e == "md") && !anchors(&file).iter().any(|a| a == anchor) {
            return Some(format!("`{target}`: no heading with anchor #{anchor} in {}", file.display()));
        }
    }
    None
}

#[test]
fn every_link_in_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let is_readme = file == root().join("README.md");
        for (line, target) in links(&text) {
            let at = format!("{}:{line}", file.strip_prefix(root()).unwrap().display());
            if let Some(inside) = target.strip_prefix(REPOSITORY) {
                // An absolute link into the repository: the file must exist here.
                let path = inside.trim_start_matches('/');
                let path = path.strip_prefix("blob/main/").or_else(|| path.strip_prefix("tree/main/")).unwrap_or(path);
                checked += 1;
                if let Some(why) = check(&root().join("README.md"), path) {
                    broken.push(format!("{at}: {why}"));
                }
            } else if target.contains("://") || target.starts_with("mailto:") {
                // The outside world is not checked offline.
            } else if is_readme && !target.starts_with('#') {
                // The README is the crate's rustdoc page: a relative link breaks there.
                broken.push(format!("{at}: `{target}` is relative; write {REPOSITORY}/blob/main/{target}"));
            } else {
                checked += 1;
                if let Some(why) = check(&file, &target) {
                    broken.push(format!("{at}: {why}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 8, "only {checked} links checked: is the link parser broken?");
}

#[test]
fn the_link_parser_finds_links_and_skips_code() {
    let text = "see [a](b.md) and `[x](y)`\n```\n[c](d)\n```\n[e](f#g)";
    assert_eq!(links(text), vec![(1, "b.md".to_owned()), (5, "f#g".to_owned())]);
    assert_eq!(slug("Golden test files (extension)"), "golden-test-files-extension");
}

/// The contract pages are kept in step with the code: every reason code, every
/// built-in purpose and category, and every command is named in them.
#[test]
fn the_contract_pages_name_every_code_name_and_command() {
    let vocabulary = std::fs::read_to_string(root().join("docs/vocabulary.md")).unwrap();
    let interchange = std::fs::read_to_string(root().join("docs/interchange.md")).unwrap();
    for code in consent_guard::ReasonCode::ALL {
        assert!(
            vocabulary.contains(&format!("`{}`", code.as_str())),
            "docs/vocabulary.md lacks code {}",
            code.as_str()
        );
    }
    // Leaves are listed by name (parents are implied by their children).
    let purposes: Vec<String> = consent_guard::Purpose::builtins().map(|p| p.to_string()).collect();
    for purpose in purposes.iter().filter(|p| !purposes.iter().any(|q| q.starts_with(&format!("{p}.")))) {
        assert!(vocabulary.contains(&format!("`{purpose}`")), "docs/vocabulary.md lacks purpose {purpose}");
    }
    let categories: Vec<String> = consent_guard::DataCategory::builtins().map(|c| c.to_string()).collect();
    for category in categories.iter().filter(|c| !categories.iter().any(|d| d.starts_with(&format!("{c}.")))) {
        assert!(vocabulary.contains(&format!("`{category}`")), "docs/vocabulary.md lacks category {category}");
    }
    for command in ["check", "lint", "explain", "audit verify", "history", "test", "diff", "schema"] {
        assert!(interchange.contains(&format!("`consent-guard {command} ")), "docs/interchange.md lacks {command}");
    }
    for extension in ["what_if", "known_subject", "1 MiB", "purpose_too_broad", "audit_unavailable"] {
        assert!(
            vocabulary.contains(extension) || interchange.contains(extension),
            "the contract pages lack {extension}"
        );
    }
}
