//! `storage.prepare_segments`: when a partition zero-fills its next
//! segment in the background (`tidegate_queue::PrepareSegments`).

use serde::{de, Deserialize, Deserializer, Serialize};
use tidegate_queue::PrepareSegments;

/// The setting as written: `"auto"`, `"on"` or `"off"`. The setting was a
/// boolean first, so `true` and `false` (in a file, or as the words in an
/// environment variable) still mean on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prepare {
    /// With the disk's spare time only (the default).
    #[default]
    Auto,
    On,
    Off,
}

impl From<Prepare> for PrepareSegments {
    fn from(p: Prepare) -> Self {
        match p {
            Prepare::Auto => PrepareSegments::Auto,
            Prepare::On => PrepareSegments::On,
            Prepare::Off => PrepareSegments::Off,
        }
    }
}

impl<'de> Deserialize<'de> for Prepare {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Word(String),
        }
        let written = Written::deserialize(d)
            .map_err(|_| de::Error::custom("expected \"auto\", \"on\" or \"off\""))?;
        match written {
            Written::Flag(true) => Ok(Prepare::On),
            Written::Flag(false) => Ok(Prepare::Off),
            Written::Word(word) => match word.as_str() {
                "auto" => Ok(Prepare::Auto),
                "on" | "true" => Ok(Prepare::On),
                "off" | "false" => Ok(Prepare::Off),
                other => Err(de::Error::custom(format!(
                    "`{other}` is not \"auto\", \"on\" or \"off\""
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Prepare;

    #[derive(serde::Deserialize)]
    struct Holder {
        p: Prepare,
    }

    fn parse(value: &str) -> Result<Prepare, String> {
        toml::from_str::<Holder>(&format!("p = {value}"))
            .map(|h| h.p)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn words_and_the_old_booleans_are_read() {
        assert_eq!(parse("\"auto\""), Ok(Prepare::Auto));
        assert_eq!(parse("\"on\""), Ok(Prepare::On));
        assert_eq!(parse("\"off\""), Ok(Prepare::Off));
        assert_eq!(parse("true"), Ok(Prepare::On));
        assert_eq!(parse("false"), Ok(Prepare::Off));
        assert_eq!(parse("\"true\""), Ok(Prepare::On));
        assert_eq!(parse("\"false\""), Ok(Prepare::Off));
    }

    #[test]
    fn anything_else_is_an_error_naming_the_choices() {
        for bad in ["\"sometimes\"", "1", "\"\"", "[1]"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("\"auto\", \"on\" or \"off\""), "{bad}: {e}");
        }
    }

    #[test]
    fn written_back_as_the_word() {
        let v = toml::Value::try_from(Prepare::Auto).unwrap();
        assert_eq!(v.as_str(), Some("auto"));
    }
}
