//! What hermes-reconcile prints on stdout (doc/conventions.md#messages,
//! doc/design.md#boot-log): one `reconcile:` line per slot, or `-j`'s JSON.

use super::Entry;
use crate::state;

/// `reconcile: profile=<p> prior_state=<s|None> action=<a>`.
pub fn report_line(e: &Entry) -> String {
    let prior = e.prior_state.as_deref().map_or("None".into(), state::printable);
    format!("reconcile: profile={} prior_state={prior} action={}", e.profile, e.action.as_str())
}

/// The entries as a JSON array of `{profile, prior_state, action,
/// prior_exit, folded_into_root}`, on one line (strings escaped by
/// serde_json).
pub fn report_json(entries: &[Entry]) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    let mut out = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let prior = e.prior_state.as_deref().map_or("null".to_string(), quote);
        out.push_str(&format!(
            "{{\"profile\":{},\"prior_state\":{prior},\"action\":{},\"prior_exit\":{},\"folded_into_root\":{}}}",
            quote(e.profile.as_str()),
            quote(e.action.as_str()),
            quote(e.prior_exit.as_str()),
            e.folded_into_root
        ));
    }
    out.push(']');
    out
}
