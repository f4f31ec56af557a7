//! The one decimal grammar, `["-"] 1*DIGIT ["." 1*DIGIT]`, shared by number
//! literals in a filter and header values compared as numbers, so that
//! `price = 10` and a header `price: 10.0` agree on what a number is.

/// Length of the decimal at the start of `bytes`, or `None` when `bytes`
/// does not start with one (a lone `-`, or a `.` without digits after it).
pub(crate) fn decimal_len(bytes: &[u8]) -> Option<usize> {
    let sign = usize::from(bytes.first() == Some(&b'-'));
    let int = digits_at(bytes, sign);
    if int == 0 {
        return None;
    }
    let end = sign + int;
    if bytes.get(end) != Some(&b'.') {
        return Some(end);
    }
    match digits_at(bytes, end + 1) {
        0 => None,
        frac => Some(end + 1 + frac),
    }
}

/// `text` as a finite `f64` if it is exactly one decimal (no sign `+`, no
/// exponent, no surrounding whitespace, not `inf` or `NaN`).
pub(crate) fn parse_decimal(text: &[u8]) -> Option<f64> {
    if decimal_len(text) != Some(text.len()) {
        return None;
    }
    // All ASCII by the check above, so always UTF-8.
    let n: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    n.is_finite().then_some(n)
}

fn digits_at(bytes: &[u8], from: usize) -> usize {
    bytes
        .iter()
        .skip(from)
        .take_while(|b| b.is_ascii_digit())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_decimal_grammar() {
        assert_eq!(parse_decimal(b"42"), Some(42.0));
        assert_eq!(parse_decimal(b"-0.5"), Some(-0.5));
        assert_eq!(parse_decimal(b"007"), Some(7.0));
        for bad in [
            "", "-", "1.", ".5", "+1", "1e3", " 1", "1 ", "inf", "NaN", "1.2.3", "--1", "0x10",
        ] {
            assert_eq!(parse_decimal(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_decimals_too_large_for_f64() {
        let huge = format!("1{}", "0".repeat(400));
        assert_eq!(decimal_len(huge.as_bytes()), Some(401));
        assert_eq!(parse_decimal(huge.as_bytes()), None);
    }

    #[test]
    fn length_stops_at_the_first_byte_outside_the_grammar() {
        assert_eq!(decimal_len(b"12)"), Some(2));
        assert_eq!(decimal_len(b"-1.25,"), Some(5));
        assert_eq!(decimal_len(b"1.x"), None);
        assert_eq!(decimal_len(b"-x"), None);
    }
}
