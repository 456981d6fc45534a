//! Replaces the variable parts of a message with placeholders, so `user 42 not found` and
//! `user 97 not found` group together: `<email> <url> <uuid> <sha1> <md5> <date> <ip> <hex>
//! <float> <int>`, the same vocabulary as Sentry's parameterisation, applied in that order (the
//! more specific patterns first, so a UUID is not read as five hex numbers).

use std::sync::OnceLock;

use regex::Regex;

struct Rule {
    placeholder: &'static str,
    pattern: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        placeholder: "<email>",
        pattern: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    },
    Rule {
        placeholder: "<url>",
        pattern: r#"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+"#,
    },
    Rule {
        placeholder: "<uuid>",
        pattern: r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b",
    },
    Rule {
        placeholder: "<sha1>",
        pattern: r"\b[0-9A-Fa-f]{40}\b",
    },
    Rule {
        placeholder: "<md5>",
        pattern: r"\b[0-9A-Fa-f]{32}\b",
    },
    Rule {
        placeholder: "<date>",
        pattern: r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b",
    },
    Rule {
        placeholder: "<ip>",
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b",
    },
    Rule {
        placeholder: "<hex>",
        pattern: r"\b0[xX][0-9A-Fa-f]+\b|\b[0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*\d[0-9A-Fa-f]*\b|\b[0-9A-Fa-f]*\d[0-9A-Fa-f]*[A-Fa-f][0-9A-Fa-f]*\b",
    },
    // No trailing \b: numbers with units (`1.25s`, `500ms`) are variable too.
    Rule {
        placeholder: "<float>",
        pattern: r"\b\d+\.\d+",
    },
    Rule {
        placeholder: "<int>",
        pattern: r"\b\d+",
    },
];

fn compiled() -> &'static [(Regex, &'static str)] {
    static RE: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RE.get_or_init(|| {
        RULES
            .iter()
            // The patterns are constants tested below; a failure is a programming error caught by
            // the tests, and skipping the rule keeps ingest running rather than panicking.
            .filter_map(|r| Regex::new(r.pattern).ok().map(|re| (re, r.placeholder)))
            .collect()
    })
}

/// The message with variable parts replaced by placeholders.
pub fn parameterize(message: &str) -> String {
    let mut out = message.to_string();
    for (re, placeholder) in compiled() {
        if *placeholder == "<hex>" {
            // Hex words shorter than 8 characters are usually words ("cafe", "add1"), not ids.
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    let m = c.get(0).map_or("", |m| m.as_str());
                    if m.len() >= 8 || m.starts_with("0x") || m.starts_with("0X") {
                        (*placeholder).to_string()
                    } else {
                        m.to_string()
                    }
                })
                .into_owned();
        } else {
            out = re.replace_all(&out, *placeholder).into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles() {
        assert_eq!(compiled().len(), RULES.len());
    }

    #[test]
    fn variable_parts_become_placeholders() {
        let cases = [
            (
                "could not connect to 10.0.0.5 after 3 tries",
                "could not connect to <ip> after <int> tries",
            ),
            ("user 42 not found", "user <int> not found"),
            (
                "order 3f2b8c1e-0d4a-4b7e-9c1a-2e5f6a7b8c9d failed",
                "order <uuid> failed",
            ),
            ("mail ada@example.com bounced", "mail <email> bounced"),
            (
                "GET https://api.example.com/v1/items?id=7 timed out",
                "GET <url> timed out",
            ),
            (
                "took 1.25s at 2026-11-28T12:43:21Z",
                "took <float>s at <date>",
            ),
            ("bad pointer 0xdeadbeef", "bad pointer <hex>"),
            (
                "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
                "commit <sha1>",
            ),
            ("job a1b2c3d4e5 failed", "job <hex> failed"),
            ("cafe is closed", "cafe is closed"),
            ("slow query: 500ms", "slow query: <int>ms"),
        ];
        for (input, want) in cases {
            assert_eq!(parameterize(input), want, "{input}");
        }
    }
}
