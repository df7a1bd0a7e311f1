//! Each tool's page starts with the synopsis its `-h` prints
//! (doc/conventions.md#pages): the first code block under `## Interface`.
//! One line for a tool with one form; a tool with subcommands (hermes-slot)
//! has a line with its global options and `command [ args... ]`, then one
//! line per subcommand, which `-h` joins with ` | ` in one line.

use std::path::Path;
use std::process::Command;

const TOOLS: [(&str, &str); 6] = [
    ("dashboard-finish", env!("CARGO_BIN_EXE_dashboard-finish")),
    ("dashboard-run", env!("CARGO_BIN_EXE_dashboard-run")),
    ("hermes-reconcile", env!("CARGO_BIN_EXE_hermes-reconcile")),
    ("hermes-seed-supervise", env!("CARGO_BIN_EXE_hermes-seed-supervise")),
    ("hermes-slot", env!("CARGO_BIN_EXE_hermes-slot")),
    ("hermes-svscan-perms", env!("CARGO_BIN_EXE_hermes-svscan-perms")),
];

/// The non-empty lines of the first code block after `## Interface`.
fn page_synopsis(tool: &str) -> Vec<String> {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc").join(format!("{tool}.md"));
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let after = text.split_once("\n## Interface\n").unwrap_or_else(|| panic!("{tool}.md: no '## Interface'")).1;
    let block = after.split_once("```\n").unwrap_or_else(|| panic!("{tool}.md: no code block")).1;
    let block = block.split_once("```").unwrap_or_else(|| panic!("{tool}.md: unterminated code block")).0;
    block.lines().map(str::trim_end).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// The one-line synopsis the page's lines stand for, as `-h` prints it.
fn as_one_line(tool: &str, lines: &[String]) -> String {
    let [first, rest @ ..] = lines else { panic!("{tool}.md: empty synopsis") };
    if rest.is_empty() {
        return first.clone();
    }
    let globals = first
        .strip_suffix(" command [ args... ]")
        .unwrap_or_else(|| panic!("{tool}.md: first synopsis line does not end in 'command [ args... ]': {first}"));
    let forms: Vec<&str> = rest
        .iter()
        .map(|l| l.strip_prefix(&format!("{tool} ")).unwrap_or_else(|| panic!("{tool}.md: subcommand line without '{tool} ': {l}")))
        .collect();
    format!("{globals} {}", forms.join(" | "))
}

#[test]
fn every_page_synopsis_is_the_tools_usage() {
    for (tool, bin) in TOOLS {
        let o = Command::new(bin).arg("-h").output().unwrap_or_else(|e| panic!("{bin}: {e}"));
        assert_eq!(o.status.code(), Some(0), "{tool} -h exit code");
        assert!(o.stderr.is_empty(), "{tool} -h wrote to stderr: {}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8(o.stdout).expect("usage is UTF-8");
        let usage = out
            .strip_prefix("usage: ")
            .and_then(|u| u.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("{tool} -h is not one 'usage: ' line: {out:?}"));
        assert_eq!(usage, as_one_line(tool, &page_synopsis(tool)), "doc/{tool}.md's synopsis differs from {tool} -h");
    }
}
