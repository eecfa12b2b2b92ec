//! Reading a CONFIG blob written as `key=value` lines (or `;`-separated),
//! the convention the example policies use. Nothing forces it: a policy gets
//! the raw bytes and may parse them however it likes.

use alloc::string::String;
use alloc::vec::Vec;

/// The `key=value` pairs of `config`, trimmed; blank entries and `#`
/// comments are skipped. A malformed entry is an error naming it.
pub fn pairs(config: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = core::str::from_utf8(config).map_err(|_| String::from("CONFIG is not UTF-8"))?;
    let mut out = Vec::new();
    for entry in text.split(['\n', ';']).map(str::trim) {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let (k, v) = entry.split_once('=').ok_or_else(|| alloc::format!("CONFIG entry '{entry}' is not key=value"))?;
        out.push((String::from(k.trim()), String::from(v.trim())));
    }
    Ok(out)
}

/// A comma-separated list, trimmed, without empty items.
pub fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// A number, or an error naming the key.
pub fn number<T: core::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| alloc::format!("CONFIG {key}={value} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_lists_and_numbers() {
        let p = pairs(b"a = 1; b=x,y\n# note\n\n").unwrap();
        assert_eq!(p, [("a".into(), "1".into()), ("b".into(), "x,y".into())]);
        assert_eq!(list(" x, ,y"), ["x", "y"]);
        assert_eq!(number::<u32>("a", "12"), Ok(12));
        assert!(number::<u32>("a", "z").unwrap_err().contains("a=z"));
        assert!(pairs(b"nonsense").unwrap_err().contains("nonsense"));
    }
}
