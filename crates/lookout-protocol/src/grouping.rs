//! Groups error events into issues. Versioned: a project stores the version it groups with, and
//! a new version is only ever added beside the old ones, so an upgrade never reshuffles issues.
//!
//! Version `lookout:1`, after Sentry's newstyle strategy:
//! 1. A client `fingerprint` decides alone, with `{{ default }}` standing for the default
//!    grouping below and `{{ type }}`, `{{ value }}`, `{{ transaction }}`, `{{ function }}`,
//!    `{{ module }}`, `{{ level }}`, `{{ logger }}`, `{{ message }}`, `{{ tags.NAME }}` filled in.
//! 2. Otherwise the exception chain: each exception's type (unless synthetic) and its frames —
//!    module (else cleaned file name), function, and the context line on platforms that send
//!    trusted source — never line numbers. Two hashes: one over in-app frames (when there are
//!    any) and one over all frames; an event joins the issue of either, and both are attached.
//! 3. An exception without frames: type and parameterised value.
//! 4. No exception (or only a synthetic one, like Node's `captureMessage`): the parameterised
//!    message template, first two non-empty lines.

use sha2::{Digest, Sha256};

use crate::event::{ErrorEvent, Exception, Frame};
use crate::parameterize::parameterize;

/// The grouping version new projects use.
pub const CURRENT_VERSION: &str = "lookout:1";

/// Platforms whose context lines are trusted for grouping (their SDKs read real source).
const CONTEXT_PLATFORMS: &[&str] = &["python", "node", "javascript", "php", "ruby"];

/// Every version this build can group with, oldest first.
pub const VERSIONS: &[&str] = &[CURRENT_VERSION];

/// The hashes an event groups under with `version`, or `None` for a version this build does not
/// know (a project grouped by a newer build); callers then keep the project's data untouched.
pub fn hashes_with(version: &str, ev: &ErrorEvent) -> Option<Vec<String>> {
    match version {
        "lookout:1" => Some(hashes(ev)),
        _ => None,
    }
}

/// The hashes an event groups under with the current version, most specific first; each 32 hex
/// characters.
pub fn hashes(ev: &ErrorEvent) -> Vec<String> {
    let defaults = default_variants(ev);
    let mut out: Vec<String> = if ev.fingerprint.is_empty() {
        defaults.iter().map(|parts| hash(parts)).collect()
    } else if ev.fingerprint.iter().any(|p| is_default(p)) {
        defaults
            .iter()
            .map(|d| {
                let parts: Vec<String> = ev
                    .fingerprint
                    .iter()
                    .flat_map(|p| {
                        if is_default(p) {
                            d.clone()
                        } else {
                            vec![expand(p, ev)]
                        }
                    })
                    .collect();
                hash(&parts)
            })
            .collect()
    } else {
        let parts: Vec<String> = ev.fingerprint.iter().map(|p| expand(p, ev)).collect();
        vec![hash(&parts)]
    };
    out.dedup();
    out
}

fn is_default(p: &str) -> bool {
    p.replace(' ', "") == "{{default}}"
}

fn hash(parts: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(CURRENT_VERSION.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize()).chars().take(32).collect()
}

/// The default grouping's variants: in-app frames (if any), then all frames; or the fallback.
fn default_variants(ev: &ErrorEvent) -> Vec<Vec<String>> {
    let chain: Vec<&Exception> = ev.exceptions.iter().filter(|e| !e.synthetic).collect();
    if chain.is_empty() {
        return vec![message_parts(ev)];
    }
    let trust_context = CONTEXT_PLATFORMS.contains(&ev.platform.as_str());
    let with = |app_only: bool| -> Option<Vec<String>> {
        let mut parts = Vec::new();
        let mut any_frame = false;
        for e in &chain {
            if let Some(t) = &e.ty {
                parts.push(format!("type:{t}"));
            }
            let frames: Vec<&Frame> = e
                .frames
                .iter()
                .filter(|f| !app_only || f.in_app == Some(true))
                .collect();
            let mut last: Option<String> = None;
            for f in frames {
                let Some(part) = frame_part(f, trust_context) else {
                    continue;
                };
                if last.as_ref() == Some(&part) {
                    continue; // immediate recursion adds nothing
                }
                any_frame = true;
                parts.push(part.clone());
                last = Some(part);
            }
        }
        any_frame.then_some(parts)
    };
    let mut variants = Vec::new();
    if let Some(app) = with(true) {
        variants.push(app);
    }
    if let Some(all) = with(false) {
        if variants.first() != Some(&all) {
            variants.push(all);
        }
    }
    if variants.is_empty() {
        // No usable frames: type and normalised value of each exception.
        let parts = chain
            .iter()
            .flat_map(|e| {
                [
                    e.ty.as_ref().map(|t| format!("type:{t}")),
                    e.value
                        .as_deref()
                        .map(|v| format!("value:{}", parameterize(v))),
                ]
            })
            .flatten()
            .collect();
        variants.push(parts);
    }
    variants
}

/// What one frame contributes: `module|file`, function, context line; `None` if nothing usable.
fn frame_part(f: &Frame, trust_context: bool) -> Option<String> {
    let place = f
        .module
        .clone()
        .or_else(|| f.filename.as_deref().map(clean_filename));
    let function = f
        .function
        .as_deref()
        .map(clean_function)
        .filter(|s| !s.is_empty());
    let context = if trust_context {
        f.context_line
            .as_deref()
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|c| !c.is_empty() && c.len() <= 120)
    } else {
        None
    };
    if place.is_none() && function.is_none() && context.is_none() {
        return None;
    }
    Some(format!(
        "frame:{}|{}|{}",
        place.unwrap_or_default(),
        function.unwrap_or_default(),
        context.unwrap_or_default()
    ))
}

/// A file name without what changes between deploys: query strings, and hashes or versions in
/// path segments (`/static/app.3f2a9c1e.js` → `/static/app.<hash>.js`).
fn clean_filename(name: &str) -> String {
    let name = name.split(['?', '#']).next().unwrap_or(name);
    parameterize(name)
}

/// A function name without what is not stable: JS anonymous markers and object prefixes.
fn clean_function(f: &str) -> String {
    let f = f.trim();
    if matches!(f, "?" | "<anonymous>" | "<unknown>" | "Object.?") {
        return String::new();
    }
    f.to_string()
}

/// The message fallback: parameterised template (or message), first two non-empty lines.
fn message_parts(ev: &ErrorEvent) -> Vec<String> {
    let raw = ev
        .message_template
        .clone()
        .or_else(|| ev.message.clone())
        .or_else(|| ev.raised().and_then(|e| e.value.clone()))
        .unwrap_or_default();
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect();
    vec![format!("message:{}", parameterize(&lines.join("\n")))]
}

/// Fills a fingerprint entry's variables.
fn expand(part: &str, ev: &ErrorEvent) -> String {
    let trimmed = part.trim();
    let Some(var) = trimmed
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(str::trim)
    else {
        return part.to_string();
    };
    let crash = ev.raised().and_then(|e| {
        e.frames
            .iter()
            .rev()
            .find(|f| f.in_app == Some(true))
            .or(e.frames.last())
    });
    let value = match var {
        "type" | "error.type" => ev.raised().and_then(|e| e.ty.clone()),
        "value" | "error.value" => ev.raised().and_then(|e| e.value.clone()),
        "transaction" => ev.transaction.clone(),
        "function" | "stack.function" => crash.and_then(|f| f.function.clone()),
        "module" | "stack.module" => crash.and_then(|f| f.module.clone()),
        "path" | "stack.abs_path" | "stack.filename" => crash.and_then(|f| f.filename.clone()),
        "level" => Some(ev.level.clone()),
        "logger" => ev.logger.clone(),
        "message" => ev.message.clone(),
        other => other
            .strip_prefix("tags.")
            .and_then(|t| ev.tags.iter().find(|(k, _)| k == t).map(|(_, v)| v.clone())),
    };
    value.unwrap_or_else(|| format!("<no {var}>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope;
    use crate::event::{parse_event, Clock};

    fn event_from(fixture: &str) -> ErrorEvent {
        let raw = std::fs::read(format!(
            "{}/../../fixtures/sentry/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let env = envelope::parse(&raw).unwrap();
        let item = env.items.iter().find(|i| i.ty() == "event").unwrap();
        let now = parse_event(
            &item.payload,
            None,
            &Clock {
                received_ms: 0,
                sent_at_ms: None,
            },
        )
        .unwrap()
        .timestamp_ms;
        parse_event(
            &item.payload,
            env.header_str("event_id"),
            &Clock {
                received_ms: now,
                sent_at_ms: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn python_exception_groups_by_in_app_stack_and_keeps_both_variants() {
        let ev = event_from("01_capture_exception.envelope.txt");
        assert_eq!(ev.title(), "ZeroDivisionError: division by zero");
        let hs = hashes(&ev);
        assert!(!hs.is_empty() && hs.iter().all(|h| h.len() == 32));
        // Line numbers never matter.
        let mut moved = ev.clone();
        for e in &mut moved.exceptions {
            for f in &mut e.frames {
                f.lineno = f.lineno.map(|l| l + 10);
            }
        }
        assert_eq!(hashes(&moved), hs);
        // The exception's value does not matter when there is a stack.
        let mut other_value = ev.clone();
        other_value.exceptions.last_mut().unwrap().value = Some("integer division by zero".into());
        assert_eq!(hashes(&other_value), hs);
        // A different type does.
        let mut other_type = ev.clone();
        other_type.exceptions.last_mut().unwrap().ty = Some("ValueError".into());
        assert_ne!(hashes(&other_type)[0], hs[0]);
    }

    #[test]
    fn messages_group_by_template_with_variable_parts_removed() {
        let ev = event_from("16_logging_error_logentry.envelope.txt");
        let mut other = ev.clone();
        other.message = Some("could not connect to db2 after 5 tries".into());
        assert_eq!(hashes(&ev), hashes(&other), "same template, other params");
        let mut plain = ev.clone();
        plain.message_template = None;
        plain.message = Some("user 42 not found".into());
        let mut plain2 = plain.clone();
        plain2.message = Some("user 97 not found".into());
        assert_eq!(hashes(&plain), hashes(&plain2));
        plain2.message = Some("order 97 not found".into());
        assert_ne!(hashes(&plain), hashes(&plain2));
    }

    #[test]
    fn node_capture_message_groups_by_message_not_its_synthetic_stack() {
        let ev = event_from("22_node_capture_message.envelope.txt");
        assert!(ev.raised().unwrap().synthetic);
        assert_eq!(ev.title(), "hello from @sentry/node");
        let mut moved = ev.clone();
        moved.exceptions[0].frames.pop();
        assert_eq!(
            hashes(&ev),
            hashes(&moved),
            "the synthetic stack must not matter"
        );
    }

    #[test]
    fn fingerprints_decide_with_default_expansion() {
        let ev = event_from(
            "07_exception_with_fingerprint_user_tags_breadcrumb_attachment.envelope.txt",
        );
        assert_eq!(ev.fingerprint, ["{{ default }}", "custom-part"]);
        let mut no_fp = ev.clone();
        no_fp.fingerprint.clear();
        assert_ne!(
            hashes(&ev),
            hashes(&no_fp),
            "the custom part must split the group"
        );
        let mut only_custom = ev.clone();
        only_custom.fingerprint = vec!["checkout".into(), "{{ type }}".into()];
        let mut other_stack = only_custom.clone();
        other_stack.exceptions.last_mut().unwrap().frames.clear();
        assert_eq!(
            hashes(&only_custom),
            hashes(&other_stack),
            "a fingerprint without default decides alone"
        );
        assert_eq!(hashes(&only_custom).len(), 1);
    }

    #[test]
    fn chained_exceptions_group_apart_from_the_last_alone() {
        let ev = event_from("17_uncaught_chained_exception.envelope.txt");
        assert_eq!(ev.exceptions.len(), 2);
        let mut alone = ev.clone();
        alone.exceptions.remove(0);
        assert_ne!(hashes(&ev)[0], hashes(&alone)[0]);
        assert!(ev.title().starts_with("RuntimeError"));
    }
}
