//! `storage.prepare_segments` as written in the configuration: `"auto"`,
//! `"on"` or `"off"`, read into the log's own
//! [`PrepareSegments`](tidegate_queue::PrepareSegments) (a `serde(with)`
//! module, so there is one enum). The setting was a boolean first, so
//! `true` and `false` (in a file, or as the words in an environment
//! variable) still mean on and off.

use serde::{de, Deserialize, Deserializer, Serializer};
use tidegate_queue::PrepareSegments;

pub fn serialize<S: Serializer>(p: &PrepareSegments, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match p {
        PrepareSegments::Auto => "auto",
        PrepareSegments::On => "on",
        PrepareSegments::Off => "off",
    })
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PrepareSegments, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Flag(bool),
        Word(String),
    }
    let written = Written::deserialize(d)
        .map_err(|_| de::Error::custom("expected \"auto\", \"on\" or \"off\""))?;
    match written {
        Written::Flag(true) => Ok(PrepareSegments::On),
        Written::Flag(false) => Ok(PrepareSegments::Off),
        Written::Word(word) => match word.as_str() {
            "auto" => Ok(PrepareSegments::Auto),
            "on" | "true" => Ok(PrepareSegments::On),
            "off" | "false" => Ok(PrepareSegments::Off),
            other => Err(de::Error::custom(format!(
                "`{other}` is not \"auto\", \"on\" or \"off\""
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tidegate_queue::PrepareSegments::{self, Auto, Off, On};

    #[derive(serde::Deserialize, serde::Serialize)]
    struct Holder {
        #[serde(with = "super")]
        p: PrepareSegments,
    }

    fn parse(value: &str) -> Result<PrepareSegments, String> {
        toml::from_str::<Holder>(&format!("p = {value}"))
            .map(|h| h.p)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn words_and_the_old_booleans_are_read() {
        assert_eq!(parse("\"auto\""), Ok(Auto));
        assert_eq!(parse("\"on\""), Ok(On));
        assert_eq!(parse("\"off\""), Ok(Off));
        assert_eq!(parse("true"), Ok(On));
        assert_eq!(parse("false"), Ok(Off));
        assert_eq!(parse("\"true\""), Ok(On));
        assert_eq!(parse("\"false\""), Ok(Off));
    }

    #[test]
    fn anything_else_is_an_error_naming_the_choices() {
        for bad in ["\"sometimes\"", "1", "\"\"", "[1]"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("\"auto\", \"on\" or \"off\""), "{bad}: {e}");
        }
    }

    #[test]
    fn written_back_as_the_word_it_is_read_from() {
        for p in [Auto, On, Off] {
            let text = toml::to_string(&Holder { p }).unwrap();
            assert_eq!(
                parse(text.trim().trim_start_matches("p = ")),
                Ok(p),
                "{text}"
            );
        }
        let auto = toml::to_string(&Holder { p: Auto }).unwrap();
        assert_eq!(auto.trim(), "p = \"auto\"");
    }
}
