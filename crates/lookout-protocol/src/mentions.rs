//! Mentions in issue comments, as Sentry writes them: `@ada@example.com` (a user by email),
//! `@ada` (a user by name or by the part of the email before `@`) and `#payments` (a team by
//! slug). A mention starts the text or follows a space or an opening bracket, so `a@b.c` in
//! prose and `#1` after a word are not mentions. This module only finds the candidates and cuts
//! the text into pieces; whom a name means is the caller's lookup, and a name that finds nobody
//! stays plain text.

/// Most mentions read from one comment; the rest stay text.
pub const MAX_MENTIONS: usize = 20;
/// Longest mention, in bytes (an email is at most 254).
const MAX_TOKEN: usize = 255;

/// What a mention names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mentioned {
    /// `@ada@example.com`: a user by email (lowercased).
    Email(String),
    /// `@ada`: a user by name or email local part (lowercased).
    Name(String),
    /// `#payments`: a team by slug (lowercased).
    Team(String),
}

/// A piece of a comment: plain text, or a mention with the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as written.
    Text(&'a str),
    /// A mention: what it names, and its text (`@ada`).
    Mention(Mentioned, &'a str),
}

fn token_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')
}

/// Cuts a comment into text and (at most [`MAX_MENTIONS`]) mentions, in order; joining the
/// pieces' texts gives the comment back.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain_from = 0;
    let mut found = 0;
    let mut prev: Option<char> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let starts = matches!(c, '@' | '#')
            && prev.is_none_or(|p| p.is_whitespace() || matches!(p, '(' | '[' | '{' | ',' | ';'));
        prev = Some(c);
        if !starts || found >= MAX_MENTIONS {
            continue;
        }
        let rest = text.get(i + 1..).unwrap_or_default();
        let len = rest
            .char_indices()
            .find(|(_, ch)| !token_char(*ch))
            .map_or(rest.len(), |(n, _)| n);
        // Sentence punctuation after a mention is not part of it: "thanks @ada."
        let body = rest
            .get(..len)
            .unwrap_or_default()
            .trim_end_matches(['.', '-', '+', '@']);
        if body.is_empty() || body.len() > MAX_TOKEN {
            continue;
        }
        let lower = body.to_lowercase();
        let what = match (c, body.find('@')) {
            ('#', None) => Mentioned::Team(lower),
            ('@', Some(at)) if at > 0 && body.get(at + 1..).is_some_and(|d| d.contains('.')) => {
                Mentioned::Email(lower)
            }
            ('@', None) => Mentioned::Name(lower),
            _ => continue,
        };
        if plain_from < i {
            out.extend(text.get(plain_from..i).map(Piece::Text));
        }
        let end = i + 1 + body.len();
        out.push(Piece::Mention(what, text.get(i..end).unwrap_or_default()));
        plain_from = end;
        found += 1;
        // Skip the mention's characters; `prev` is its last one, so `@a@b.c` is one mention.
        while iter.peek().is_some_and(|(j, _)| *j < end) {
            prev = iter.next().map(|(_, ch)| ch);
        }
    }
    if plain_from < text.len() {
        out.extend(text.get(plain_from..).map(Piece::Text));
    }
    out
}

/// The distinct mentions of a comment, in the order first written.
pub fn mentions(text: &str) -> Vec<Mentioned> {
    let mut out: Vec<Mentioned> = Vec::new();
    for p in pieces(text) {
        if let Piece::Mention(m, _) = p {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(t: &str) -> String {
        pieces(t)
            .iter()
            .map(|p| match p {
                Piece::Text(s) | Piece::Mention(_, s) => *s,
            })
            .collect()
    }

    #[test]
    fn emails_names_and_teams_are_found_where_a_mention_can_start() {
        let t = "@Ada@Example.com and @bob, ask #Payments (or #ops). mail x@y.com, issue#4, @, #";
        assert_eq!(
            mentions(t),
            vec![
                Mentioned::Email("ada@example.com".into()),
                Mentioned::Name("bob".into()),
                Mentioned::Team("payments".into()),
                Mentioned::Team("ops".into()),
            ]
        );
        assert_eq!(joined(t), t);
        let p = pieces("thanks @ada.");
        assert_eq!(p.last(), Some(&Piece::Text(".")));
        assert_eq!(
            p.get(1),
            Some(&Piece::Mention(Mentioned::Name("ada".into()), "@ada"))
        );
    }

    #[test]
    fn odd_input_never_panics_and_is_capped() {
        for t in [
            "@",
            "#",
            "@@",
            "@a@",
            "@a@b",
            "é@é.é",
            "@é@ü.de",
            "(@x)",
            "@.",
            "#-",
        ] {
            assert_eq!(joined(t), t);
        }
        let many = "@a ".repeat(100);
        assert_eq!(mentions(&many).len(), 1);
        let distinct: String = (0..100).map(|i| format!("#t{i} ")).collect();
        assert_eq!(mentions(&distinct).len(), MAX_MENTIONS);
        assert_eq!(joined(&distinct), distinct);
    }
}
