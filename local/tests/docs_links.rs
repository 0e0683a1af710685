//! The README and `docs/*.md` link only to what exists: every relative link
//! names a file or folder of the repository, and every `#anchor` a heading of
//! the Markdown file it points to (GitHub's anchors: lower case, spaces to
//! `-`, punctuation dropped but `-` and `_`, `-1`, `-2`… for repeats).
//! External links (`http:`, `https:`, `mailto:`) are not checked. Links in
//! code (fenced blocks, `inline code`) are not links.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("local/ sits in the repository")
        .to_path_buf()
}

/// README.md and every `docs/*.md`, sorted.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// The lines of `text` outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => lines.push((n + 1, line)),
            _ => {}
        }
    }
    lines
}

/// `line` without its inline code spans.
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of `[text](target)`, `![alt](target)` and `[label]: target`
/// on one line of prose.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(close) = trimmed.find("]:") {
            if let Some(target) = trimmed[close + 2..].split_whitespace().next() {
                targets.push(target.to_string());
                return targets;
            }
        }
    }
    let mut rest = line.as_str();
    while let Some(pos) = rest.find("](") {
        let after = &rest[pos + 2..];
        // The target ends at the parenthesis that closes the opening one.
        let mut depth = 1;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let inside = after[..end].trim();
        let target = inside.split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end + 1..];
    }
    targets
}

/// The anchor GitHub gives a heading's text.
fn slug(heading: &str) -> String {
    // A link in a heading counts by its text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").and_then(|mid| {
            rest[open + mid..]
                .find(')')
                .map(|close| (open + mid, open + mid + close))
        }) {
            Some((mid, close)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..mid]);
                rest = &rest[close + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a Markdown file's headings, repeats numbered as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let title = line[hashes..].trim().trim_end_matches('#').trim();
        let base = slug(title);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// What is wrong with the links of `doc`, one line per broken link.
fn broken_links(root: &Path, doc: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(doc).expect("a document is readable");
    let name = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
    let mut problems = Vec::new();
    for (n, line) in prose_lines(&text) {
        for target in link_targets(line) {
            if target.is_empty()
                || ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|scheme| target.starts_with(scheme))
            {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                doc.to_path_buf()
            } else {
                doc.parent().expect("a document is in a folder").join(path)
            };
            if !file.exists() {
                problems.push(format!("{name}:{n}: {target}: no file {path}"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_none_or(|ext| ext != "md") {
                continue;
            }
            let headings = std::fs::read_to_string(&file).expect("a linked file is readable");
            if !anchors(&headings).contains(anchor) {
                problems.push(format!("{name}:{n}: {target}: no heading #{anchor}"));
            }
        }
    }
    problems
}

#[test]
fn readme_and_docs_link_only_to_files_and_headings_that_exist() {
    let root = repo_root();
    let docs = documents(&root);
    assert!(
        docs.len() > 1,
        "expected README.md and docs/*.md, found {docs:?}"
    );
    let problems: Vec<String> = docs
        .iter()
        .flat_map(|doc| broken_links(&root, doc))
        .collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(slug("PSP payout API (outbound)"), "psp-payout-api-outbound");
    assert_eq!(
        slug("The API document (`GET /openapi.json`)"),
        "the-api-document-get-openapijson"
    );
    assert_eq!(
        slug("The audit's risks, and what shows each fixed"),
        "the-audits-risks-and-what-shows-each-fixed"
    );
    assert_eq!(slug("make dev"), "make-dev");
    assert_eq!(slug("Purchases 💰"), "purchases-");
    assert_eq!(
        slug("snake_case and [a link](x.md)"),
        "snake_case-and-a-link"
    );
    let repeated = anchors("# Notes\n\n## Notes\n```\n# not a heading\n```\n#nor this\n");
    let expected: HashSet<String> = ["notes", "notes-1"].map(String::from).into();
    assert_eq!(repeated, expected);
}

#[test]
fn links_are_found_outside_code_only() {
    assert_eq!(
        link_targets("see [a](a.md#x), ![img](pic.png \"title\") and `[no](code.md)`"),
        ["a.md#x", "pic.png"]
    );
    assert_eq!(link_targets("[label]: other.md#y"), ["other.md#y"]);
    assert_eq!(link_targets("[f(x)](f_(x).md)"), ["f_(x).md"]);
    let text = "[in](prose.md)\n```sh\n[in](code.md)\n```\n";
    let targets: Vec<String> = prose_lines(text)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .collect();
    assert_eq!(targets, ["prose.md"]);
}
