//! Typed values parsed once from the strings of the spec: Go-style durations, CPU quantities
//! and byte quantities.
//!
//! Why hand-written: k8s-openapi's `Quantity` is only a string, and no crate of the workspace
//! turns a Kubernetes quantity into a number. kube's `kube::core::Duration` parses Go
//! durations, but it accepts an empty string, signs and `5.s`, and it panics on values too
//! large for a `std::time::Duration` (it multiplies floats); a spec comes from the network and
//! must never panic the operator. So the parsers below use checked integer arithmetic and the
//! exact grammar that the CRD's patterns and the API server's CEL `duration()` accept.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration or a quantity string was refused. The message never repeats the input: the
/// field path and the value are added by the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// A leading `-`.
    #[error("must not be negative")]
    Negative,
    /// Not of the expected grammar.
    #[error("{0}")]
    Malformed(&'static str),
    /// Too large to be represented.
    #[error("is too large")]
    TooLarge,
    /// Longer than the schema allows.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Zero where zero means nothing.
    #[error("must be greater than zero")]
    Zero,
}

/// Longest duration string the CRD accepts.
pub const MAX_DURATION_LEN: usize = 32;
/// Longest quantity string the CRD accepts.
pub const MAX_QUANTITY_LEN: usize = 64;
/// Grammar of a Go-style duration, as the CRD pattern states it.
pub const DURATION_PATTERN: &str = r"^(0|([0-9]{1,12}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+)$";
/// Grammar of a non-negative Kubernetes quantity, as the CRD pattern states it.
pub const QUANTITY_PATTERN: &str =
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$";

const DURATION_HINT: &str =
    "must be a duration such as 800ms, 90s, 5m or 1h30m (units: ns, us, ms, s, m, h)";
const QUANTITY_HINT: &str = "must be a quantity such as 100m, 0.5, 1, 16Mi or 500k";

/// A non-negative Go-style duration (`800ms`, `90s`, `1h30m`, `1.5s`, `0`).
///
/// Accepted: one or more `<number><unit>` pairs, `<number>` being digits with an optional
/// decimal part (`1.5`), `<unit>` one of `ns`, `us`, `ms`, `s`, `m`, `h`; or `0` alone. This is
/// Go's `time.ParseDuration` without signs and without `5.`/`.5` forms, which is also what
/// Kubernetes CEL `duration()` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(Duration);

impl GoDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// True for `0`, `0s`, `0ms`...
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

impl FromStr for GoDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const MAX_NANOS: u128 = i64::MAX as u128; // Go's time.Duration bound, ~292 years
        if s.is_empty() {
            return Err(UnitError::Empty);
        }
        if s.starts_with('-') {
            return Err(UnitError::Negative);
        }
        if s.chars().count() > MAX_DURATION_LEN {
            return Err(UnitError::TooLong(MAX_DURATION_LEN));
        }
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut total: u128 = 0;
        while i < bytes.len() {
            let int_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == int_start || i - int_start > 12 {
                return Err(UnitError::Malformed(DURATION_HINT));
            }
            let int_part: u128 = s[int_start..i]
                .parse()
                .map_err(|_| UnitError::Malformed(DURATION_HINT))?;
            let (mut frac, mut frac_digits) = (0u128, 0u32);
            if i < bytes.len() && bytes[i] == b'.' {
                i += 1;
                let frac_start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i == frac_start || i - frac_start > 9 {
                    return Err(UnitError::Malformed(DURATION_HINT));
                }
                frac = s[frac_start..i]
                    .parse()
                    .map_err(|_| UnitError::Malformed(DURATION_HINT))?;
                frac_digits = u32::try_from(i - frac_start).unwrap_or(9);
            }
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit_nanos: u128 = match &s[unit_start..i] {
                "ns" => 1,
                "us" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3_600 * 1_000_000_000,
                _ => return Err(UnitError::Malformed(DURATION_HINT)),
            };
            // Fractions below a nanosecond are dropped, as Go does.
            let part = int_part * unit_nanos + frac * unit_nanos / 10u128.pow(frac_digits);
            total = total.checked_add(part).ok_or(UnitError::TooLarge)?;
            if total > MAX_NANOS {
                return Err(UnitError::TooLarge);
            }
        }
        let nanos = u64::try_from(total).map_err(|_| UnitError::TooLarge)?;
        Ok(Self(Duration::from_nanos(nanos)))
    }
}

impl fmt::Display for GoDuration {
    /// Go's canonical form: `800ms`, `1m30s`, `1h0m0s`, `1.5s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000_000_000 {
            let (unit, div) = if nanos < 1_000 {
                ("ns", 1)
            } else if nanos < 1_000_000 {
                ("us", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{}", decimal(nanos, div), unit);
        }
        let secs_nanos = nanos % 60_000_000_000;
        let mins = nanos / 60_000_000_000;
        let (h, m) = (mins / 60, mins % 60);
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        write!(f, "{}s", decimal(secs_nanos, 1_000_000_000))
    }
}

/// `value / div` as a decimal without trailing zeros.
fn decimal(value: u128, div: u128) -> String {
    let int = value / div;
    let frac = value % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let frac = format!("{frac:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// A Kubernetes quantity, decoded: the value is `mantissa × 10^exp10 × 2^exp2`.
struct RawQuantity {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

fn parse_quantity(s: &str) -> Result<RawQuantity, UnitError> {
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    if s.starts_with('-') {
        return Err(UnitError::Negative);
    }
    if s.chars().count() > MAX_QUANTITY_LEN {
        return Err(UnitError::TooLong(MAX_QUANTITY_LEN));
    }
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(UnitError::Malformed(QUANTITY_HINT));
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return Err(UnitError::TooLarge);
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| UnitError::Malformed(QUANTITY_HINT))?
    };
    let frac_len = i32::try_from(frac.len()).map_err(|_| UnitError::TooLarge)?;
    let (exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exp = other
                .strip_prefix(['e', 'E'])
                .ok_or(UnitError::Malformed(QUANTITY_HINT))?;
            let digits = exp.trim_start_matches(['+', '-']);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || exp.len() - digits.len() > 1
            {
                return Err(UnitError::Malformed(QUANTITY_HINT));
            }
            let e: i32 = exp.parse().map_err(|_| UnitError::TooLarge)?;
            (e, 0)
        }
    };
    Ok(RawQuantity {
        mantissa,
        exp10: exp10 - frac_len,
        exp2,
    })
}

impl RawQuantity {
    /// The value in units of `10^scale`, rounded up (as Kubernetes' `Quantity.Value()` and
    /// `MilliValue()` do).
    fn ceil_scaled(&self, scale: i32) -> Result<u64, UnitError> {
        if self.mantissa == 0 {
            return Ok(0);
        }
        let mut v = self
            .mantissa
            .checked_mul(1u128 << self.exp2)
            .ok_or(UnitError::TooLarge)?;
        let exp = self.exp10 - scale;
        if exp >= 0 {
            let mul = 10u128
                .checked_pow(exp.unsigned_abs())
                .ok_or(UnitError::TooLarge)?;
            v = v.checked_mul(mul).ok_or(UnitError::TooLarge)?;
        } else {
            match 10u128.checked_pow(exp.unsigned_abs()) {
                Some(div) => v = v.div_ceil(div),
                // Smaller than one unit: rounds up to one.
                None => v = 1,
            }
        }
        u64::try_from(v).map_err(|_| UnitError::TooLarge)
    }
}

/// A CPU amount in millicores, parsed from a Kubernetes quantity (`100m`, `0.5`, `1`, `2`),
/// rounded up to a whole millicore; always greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuQuantity(u64);

impl CpuQuantity {
    /// From millicores; `None` for zero.
    pub fn from_millis(millis: u64) -> Option<Self> {
        (millis > 0).then_some(Self(millis))
    }

    /// The amount in millicores.
    pub fn millis(self) -> u64 {
        self.0
    }
}

impl FromStr for CpuQuantity {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let millis = parse_quantity(s)?.ceil_scaled(-3)?;
        Self::from_millis(millis).ok_or(UnitError::Zero)
    }
}

impl fmt::Display for CpuQuantity {
    /// Whole cores without a suffix (`1`, `2`), anything else in millicores (`100m`, `1500m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// A size in bytes, parsed from a Kubernetes quantity (`16Mi`, `1Gi`, `500k`, `1e6`, `1024`),
/// rounded up to a whole byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteQuantity(u64);

impl ByteQuantity {
    /// From a number of bytes.
    pub fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteQuantity {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(parse_quantity(s)?.ceil_scaled(0)?))
    }
}

impl fmt::Display for ByteQuantity {
    /// The largest binary suffix that divides exactly (`16Mi`), else the largest decimal one
    /// (`500k`), else plain bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const BINARY: [(&str, u32); 6] = [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ];
        const DECIMAL: [(&str, u32); 6] = [
            ("E", 18),
            ("P", 15),
            ("T", 12),
            ("G", 9),
            ("M", 6),
            ("k", 3),
        ];
        if self.0 > 0 {
            for (suffix, shift) in BINARY {
                let unit = 1u64 << shift;
                if self.0.is_multiple_of(unit) {
                    return write!(f, "{}{suffix}", self.0 / unit);
                }
            }
            for (suffix, exp) in DECIMAL {
                let unit = 10u64.pow(exp);
                if self.0.is_multiple_of(unit) {
                    return write!(f, "{}{suffix}", self.0 / unit);
                }
            }
        }
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_to_their_value() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("800ms", Duration::from_millis(800)),
            ("90s", Duration::from_secs(90)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            ("1.5h", Duration::from_secs(5400)),
            ("2m3.4s", Duration::from_millis(123_400)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("1h2m3s4ms5us6ns", Duration::from_nanos(3_723_004_005_006)),
            ("100.00100s", Duration::from_millis(100_001)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (input, want) in cases {
            let got: GoDuration = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.get(), *want, "{input}");
        }
    }

    #[test]
    fn malformed_or_negative_durations_are_refused_with_a_reason() {
        let cases: &[(&str, UnitError)] = &[
            ("", UnitError::Empty),
            ("-5s", UnitError::Negative),
            ("5", UnitError::Malformed(DURATION_HINT)),
            ("5x", UnitError::Malformed(DURATION_HINT)),
            ("s", UnitError::Malformed(DURATION_HINT)),
            ("5.s", UnitError::Malformed(DURATION_HINT)),
            (".5s", UnitError::Malformed(DURATION_HINT)),
            ("+5s", UnitError::Malformed(DURATION_HINT)),
            ("5 s", UnitError::Malformed(DURATION_HINT)),
            ("1d", UnitError::Malformed(DURATION_HINT)),
            ("5sm", UnitError::Malformed(DURATION_HINT)),
            ("1e3s", UnitError::Malformed(DURATION_HINT)),
            ("12µs", UnitError::Malformed(DURATION_HINT)),
            ("2562048h", UnitError::TooLarge),
            ("999999999999h", UnitError::TooLarge),
            ("9999999999999h", UnitError::Malformed(DURATION_HINT)),
            ("1h1m1s1h1m1s1h1m1s1h1m1s1h1m1s1h1m", UnitError::TooLong(32)),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<GoDuration>().as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn duration_pattern_accepts_exactly_what_the_parser_accepts() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for input in [
            "0", "0s", "800ms", "1h30m", "1.5s", "10ns", "5", "5x", "-5s", ".5s", "5.s", "", "1d",
            "12µs", "+5s", "1e3s",
        ] {
            assert_eq!(
                re.is_match(input),
                input.parse::<GoDuration>().is_ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn durations_display_in_go_canonical_form() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_millis(800), "800ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
        ];
        for (d, want) in cases {
            let shown = GoDuration::from(*d).to_string();
            assert_eq!(shown, *want);
            assert_eq!(shown.parse::<GoDuration>().unwrap().get(), *d, "round trip");
        }
    }

    #[test]
    fn cpu_quantities_parse_to_millicores_rounding_up() {
        let cases: &[(&str, u64)] = &[
            ("100m", 100),
            ("0.5", 500),
            ("1", 1000),
            ("2", 2000),
            ("1.5", 1500),
            (".25", 250),
            ("1500m", 1500),
            ("1n", 1),
            ("1500u", 2),
            ("1k", 1_000_000),
            ("1e-3", 1),
            ("2e2", 200_000),
            ("1Ki", 1_024_000),
        ];
        for (input, want) in cases {
            let got: CpuQuantity = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.millis(), *want, "{input}");
        }
    }

    #[test]
    fn zero_negative_and_garbage_cpu_are_refused() {
        let cases: &[(&str, UnitError)] = &[
            ("0", UnitError::Zero),
            ("0m", UnitError::Zero),
            ("0.0", UnitError::Zero),
            ("-1", UnitError::Negative),
            ("-100m", UnitError::Negative),
            ("", UnitError::Empty),
            ("abc", UnitError::Malformed(QUANTITY_HINT)),
            ("100mm", UnitError::Malformed(QUANTITY_HINT)),
            ("1.2.3", UnitError::Malformed(QUANTITY_HINT)),
            (".", UnitError::Malformed(QUANTITY_HINT)),
            ("m", UnitError::Malformed(QUANTITY_HINT)),
            ("1 m", UnitError::Malformed(QUANTITY_HINT)),
            ("1e", UnitError::Malformed(QUANTITY_HINT)),
            ("1e+-3", UnitError::Malformed(QUANTITY_HINT)),
            ("2e2m", UnitError::Malformed(QUANTITY_HINT)),
            ("1e40", UnitError::TooLarge),
            ("99999999999999999999", UnitError::TooLarge),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<CpuQuantity>().as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn cpu_displays_normalised() {
        for (input, want) in [
            ("100m", "100m"),
            ("0.1", "100m"),
            ("1", "1"),
            ("1000m", "1"),
            ("1.5", "1500m"),
        ] {
            assert_eq!(input.parse::<CpuQuantity>().unwrap().to_string(), want);
        }
    }

    #[test]
    fn byte_quantities_parse_to_bytes() {
        let cases: &[(&str, u64)] = &[
            ("16Mi", 16 << 20),
            ("1Gi", 1 << 30),
            ("500k", 500_000),
            ("1e6", 1_000_000),
            ("1E6", 1_000_000),
            ("1024", 1024),
            ("1.5Ki", 1536),
            ("0.5", 1),
            ("1M", 1_000_000),
            ("0", 0),
            ("8Ei", 8 << 60),
        ];
        for (input, want) in cases {
            let got: ByteQuantity = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.bytes(), *want, "{input}");
        }
    }

    #[test]
    fn malformed_byte_quantities_are_refused() {
        let cases: &[(&str, UnitError)] = &[
            ("-1Mi", UnitError::Negative),
            ("16MB", UnitError::Malformed(QUANTITY_HINT)),
            ("16 Mi", UnitError::Malformed(QUANTITY_HINT)),
            ("Mi", UnitError::Malformed(QUANTITY_HINT)),
            ("16mi", UnitError::Malformed(QUANTITY_HINT)),
            ("16Ei", UnitError::TooLarge),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<ByteQuantity>().as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn bytes_display_with_the_largest_exact_suffix() {
        for (input, want) in [
            ("16Mi", "16Mi"),
            ("16777216", "16Mi"),
            ("500k", "500k"),
            ("1e6", "1M"),
            ("1000", "1k"),
            ("1023", "1023"),
            ("0", "0"),
            ("1.5Ki", "1536"),
        ] {
            assert_eq!(input.parse::<ByteQuantity>().unwrap().to_string(), want);
        }
    }

    #[test]
    fn quantity_pattern_accepts_exactly_what_the_parser_accepts() {
        let re = regex::Regex::new(QUANTITY_PATTERN).unwrap();
        for input in [
            "100m", "0.5", ".5", "1", "16Mi", "500k", "1e6", "1E-3", "1.", "-1", "", "abc", "1 m",
            "16MB", "1e", "m", ".",
        ] {
            assert_eq!(
                re.is_match(input),
                input.parse::<ByteQuantity>().is_ok(),
                "{input:?}"
            );
        }
    }
}
