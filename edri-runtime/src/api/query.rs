//! Reading a URL query (`?a=1&b=x%20y`) strictly: a key or value that is not UTF-8 once
//! percent-decoded is an error naming it, never text with U+FFFD in it.

/// A query key or value that is not UTF-8 once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadQuery {
    /// The parameter's name (with U+FFFD where its own bytes are not UTF-8).
    pub(crate) key: String,
    /// What is wrong, for humans.
    pub(crate) message: String,
}

/// The pairs of `query` (the part after `?`), form-decoded as browsers encode them: `+` is a
/// space, `%XX` a byte. Empty segments (`a=1&&b=2`) are skipped; a key without `=` has an
/// empty value.
pub(crate) fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, BadQuery> {
    let Some(query) = query else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        let key_bytes = decode(key);
        let key = match String::from_utf8(key_bytes) {
            Ok(key) => key,
            Err(e) => {
                let key = String::from_utf8_lossy(e.as_bytes()).into_owned();
                return Err(BadQuery {
                    message: format!("query parameter name `{key}` is not valid UTF-8"),
                    key,
                });
            }
        };
        let Ok(value) = String::from_utf8(decode(value)) else {
            return Err(BadQuery {
                message: format!("query parameter `{key}` is not valid UTF-8 once percent-decoded"),
                key,
            });
        };
        out.push((key, value));
    }
    Ok(out)
}

/// `+` → space, then percent-decoding (a `%` not followed by two hex digits stays as is).
fn decode(text: &str) -> Vec<u8> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(query: &str) -> Vec<(String, String)> {
        pairs(Some(query)).unwrap()
    }

    #[test]
    fn decodes_like_a_form() {
        assert_eq!(pairs(None).unwrap(), vec![]);
        assert_eq!(ok("a=1&b=x+y%20z&&c"), [("a", "1"), ("b", "x y z"), ("c", "")].map(owned));
        assert_eq!(ok("t=%C3%A9%2B"), [("t", "é+")].map(owned));
        assert_eq!(ok("p=100%"), [("p", "100%")].map(owned));
    }

    #[test]
    fn invalid_utf8_names_the_parameter() {
        let e = pairs(Some("ok=1&tags=%FF")).unwrap_err();
        assert_eq!(e.key, "tags");
        assert!(e.message.contains("`tags`"), "{}", e.message);
        let e = pairs(Some("a%FFb=1")).unwrap_err();
        assert_eq!(e.key, "a\u{FFFD}b");
    }

    fn owned((a, b): (&str, &str)) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }
}
