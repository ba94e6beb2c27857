//! A parser for Go's `flag` package syntax, which the Go originals use:
//! `-name value`, `-name=value`, `--name value`, `--name=value`, and bare
//! boolean flags. Parsing stops at `--` or the first non-flag argument.

use std::collections::BTreeMap;

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Takes a value.
    Value,
    /// A boolean: present means true; `-name=false` is accepted.
    Bool,
}

/// A flag-parsing error, worded as Go's `flag` package words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag that is not defined.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A value flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A boolean with a value that is not a boolean.
    #[error("invalid boolean value {value:?} for -{name}")]
    BadBool {
        /// The flag.
        name: String,
        /// The value given.
        value: String,
    },
    /// `-h` or `-help`.
    #[error("help requested")]
    Help,
    /// Arguments left after the flags.
    #[error("unexpected argument {0:?}")]
    Extra(String),
}

/// Parses `args` against `spec` (name -> kind). Returns name -> value (`"true"` for booleans).
pub fn parse(
    args: &[String],
    spec: &[(&str, Kind)],
) -> Result<BTreeMap<String, String>, FlagError> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            break;
        };
        if body.is_empty() {
            break;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            return Err(FlagError::Help);
        }
        let Some((_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(FlagError::Unknown(name.to_owned()));
        };
        let value = match (kind, inline) {
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Bool, Some(v)) => match v.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => "true".to_owned(),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => "false".to_owned(),
                _ => {
                    return Err(FlagError::BadBool {
                        name: name.to_owned(),
                        value: v,
                    });
                }
            },
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| FlagError::MissingValue(name.to_owned()))?
            }
        };
        out.insert(name.to_owned(), value);
        i += 1;
    }
    if let Some(extra) = args.get(i) {
        return Err(FlagError::Extra(extra.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    const SPEC: &[(&str, Kind)] = &[("addr", Kind::Value), ("v", Kind::Bool)];

    #[test]
    fn all_go_spellings_work() {
        for a in [
            args(&["-addr", "x:1"]),
            args(&["-addr=x:1"]),
            args(&["--addr=x:1"]),
            args(&["--addr", "x:1"]),
        ] {
            assert_eq!(parse(&a, SPEC).unwrap()["addr"], "x:1");
        }
        assert_eq!(parse(&args(&["-v"]), SPEC).unwrap()["v"], "true");
        assert_eq!(parse(&args(&["-v=false"]), SPEC).unwrap()["v"], "false");
    }

    #[test]
    fn errors_are_worded_like_go() {
        assert_eq!(
            parse(&args(&["-nope"]), SPEC).unwrap_err().to_string(),
            "flag provided but not defined: -nope"
        );
        assert_eq!(
            parse(&args(&["-addr"]), SPEC).unwrap_err(),
            FlagError::MissingValue("addr".into())
        );
        assert_eq!(parse(&args(&["-h"]), SPEC).unwrap_err(), FlagError::Help);
        assert!(matches!(
            parse(&args(&["-v=maybe"]), SPEC),
            Err(FlagError::BadBool { .. })
        ));
        assert!(matches!(
            parse(&args(&["stray"]), SPEC),
            Err(FlagError::Extra(_))
        ));
    }
}
