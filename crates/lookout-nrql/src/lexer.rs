//! Tokens of a query, each with its byte offset, line and column (both from 1).

use crate::parser::ParseError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name: a keyword or an attribute (`http.statusCode`), or a backquoted name.
    Word(String),
    /// A backquoted name (never a keyword).
    Quoted(String),
    /// A string literal (single or double quotes).
    Str(String),
    /// A number.
    Num(f64),
    /// Punctuation and operators: `( ) , : * / + - = != <> < <= > >=`.
    Sym(&'static str),
    /// End of input.
    End,
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub column: usize,
}

const SYMBOLS: &[&str] = &[
    "!=", "<>", "<=", ">=", "(", ")", ",", ":", "*", "/", "+", "-", "=", "<", ">",
];

/// The tokens of `src`, ending with [`Tok::End`].
pub(crate) fn tokens(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i].1;
        let (tl, tc) = (line, col);
        let err = |message: String| ParseError {
            line: tl,
            column: tc,
            message,
        };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, c);
            continue;
        }
        // `--` and `//` comments run to the end of the line.
        if (c == '-' || c == '/') && chars.get(i + 1).map(|x| x.1) == Some(c) {
            while i < chars.len() && chars[i].1 != '\n' {
                let ch = chars[i].1;
                advance(&mut i, &mut line, &mut col, ch);
            }
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            let quote = c;
            advance(&mut i, &mut line, &mut col, c);
            let mut text = String::new();
            loop {
                let Some(&(_, ch)) = chars.get(i) else {
                    return Err(err(format!("unterminated {quote}…{quote}")));
                };
                advance(&mut i, &mut line, &mut col, ch);
                if ch == '\\' {
                    if let Some(&(_, next)) = chars.get(i) {
                        advance(&mut i, &mut line, &mut col, next);
                        text.push(next);
                        continue;
                    }
                }
                if ch == quote {
                    // A doubled quote stands for itself.
                    if chars.get(i).map(|x| x.1) == Some(quote) {
                        advance(&mut i, &mut line, &mut col, quote);
                        text.push(quote);
                        continue;
                    }
                    break;
                }
                text.push(ch);
            }
            let tok = if quote == '`' {
                Tok::Quoted(text)
            } else {
                Tok::Str(text)
            };
            out.push(Token {
                tok,
                line: tl,
                column: tc,
            });
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|x| x.1.is_ascii_digit()))
        {
            let start = chars[i].0;
            while let Some(&(_, ch)) = chars.get(i) {
                let exponent_sign =
                    (ch == '-' || ch == '+') && i > 0 && matches!(chars[i - 1].1, 'e' | 'E');
                if ch.is_ascii_digit() || ch == '.' || ch == 'e' || ch == 'E' || exponent_sign {
                    advance(&mut i, &mut line, &mut col, ch);
                } else {
                    break;
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            let text = &src[start..end];
            let n: f64 = text
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| err(format!("`{text}` is not a number")))?;
            out.push(Token {
                tok: Tok::Num(n),
                line: tl,
                column: tc,
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = chars[i].0;
            while let Some(&(_, ch)) = chars.get(i) {
                if ch.is_alphanumeric() || matches!(ch, '_' | '.' | '$' | '@') {
                    advance(&mut i, &mut line, &mut col, ch);
                } else {
                    break;
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            out.push(Token {
                tok: Tok::Word(src[start..end].to_string()),
                line: tl,
                column: tc,
            });
            continue;
        }
        let rest = &src[chars[i].0..];
        let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
            return Err(err(format!("unexpected character `{c}`")));
        };
        for ch in sym.chars() {
            advance(&mut i, &mut line, &mut col, ch);
        }
        out.push(Token {
            tok: Tok::Sym(sym),
            line: tl,
            column: tc,
        });
    }
    out.push(Token {
        tok: Tok::End,
        line,
        column: col,
    });
    Ok(out)
}
