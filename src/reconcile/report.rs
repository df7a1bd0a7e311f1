//! What hermes-reconcile prints on stdout (doc/conventions.md#messages,
//! doc/design.md#boot-log): one `reconcile:` line per slot, or `-j`'s JSON.

use super::Entry;
use crate::state;

/// `reconcile: profile=<p> prior_state=<s|None> action=<a>`.
pub fn report_line(e: &Entry) -> String {
    let prior = e.prior_state.as_deref().map_or("None".into(), state::printable);
    format!("reconcile: profile={} prior_state={prior} action={}", e.profile, e.action.as_str())
}

/// How a run failed, for `-j`: the fatal message without its
/// `hermes-reconcile: fatal: ` prefix, and the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure<'a> {
    /// The message.
    pub error: &'a str,
    /// The exit code.
    pub code: u8,
}

/// `-j`'s one document (doc/conventions.md#json), on one line without its
/// newline: `{"slots":[…]}`, each slot `{profile, prior_state, action,
/// prior_exit, folded_into_root}` (strings escaped by serde_json); after a
/// failure, the slots gathered before it, then `"error"` and `"code"`.
pub fn report_json(entries: &[Entry], failure: Option<Failure<'_>>) -> String {
    let mut out = String::from("{\"slots\":[");
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
    if let Some(f) = failure {
        out.push_str(&format!(",\"error\":{},\"code\":{}", quote(f.error), f.code));
    }
    out.push('}');
    out
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::reconcile::Action;
    use crate::state::PriorExit;

    #[test]
    fn one_object_with_the_error_after_the_slots() {
        let e = Entry {
            profile: Profile::root(),
            prior_state: Some("run\"ning\n".into()),
            action: Action::Started,
            prior_exit: PriorExit::Unknown,
            built: None,
            folded_into_root: false,
        };
        assert_eq!(report_json(&[], None), r#"{"slots":[]}"#);
        assert_eq!(
            report_json(std::slice::from_ref(&e), None),
            r#"{"slots":[{"profile":"default","prior_state":"run\"ning\n","action":"started","prior_exit":"unknown","folded_into_root":false}]}"#
        );
        let failed = report_json(&[e.clone(), e], Some(Failure { error: "unable to build 1 of 3 slots \"x\"", code: 111 }));
        let v: serde_json::Value = serde_json::from_str(&failed).unwrap();
        assert_eq!(v["slots"].as_array().map(Vec::len), Some(2));
        assert_eq!((v["error"].as_str(), v["code"].as_u64()), (Some("unable to build 1 of 3 slots \"x\""), Some(111)));
        assert!(!failed.contains('\n'));
    }
}
