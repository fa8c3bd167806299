//! Where a record is in its partition, and where a reader resumes: an offset on the embedded log
//! and Kafka, a sequence number on Kinesis. The two never meet in one log.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A place in one partition, ordered as the partition is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    /// The embedded log and Kafka: the record's offset, from 0, without gaps.
    Offset(u64),
    /// Kinesis: a record's sequence number (decimal digits, up to 129 of them: wider than any
    /// integer type, and not contiguous), or just after it (`after`), where a reader that
    /// processed that record resumes.
    Sequence { number: Arc<str>, after: bool },
}

impl Position {
    /// Where a reader that processed the record here resumes.
    #[must_use]
    pub fn next(&self) -> Self {
        match self {
            Self::Offset(offset) => Self::Offset(offset + 1),
            Self::Sequence { number, .. } => Self::Sequence { number: Arc::clone(number), after: true },
        }
    }

    /// The offset, on the backends that have offsets.
    #[must_use]
    pub const fn offset(&self) -> Option<u64> {
        match self {
            Self::Offset(offset) => Some(*offset),
            Self::Sequence { .. } => None,
        }
    }

    /// A string whose byte order is the positions' order, for stores that compare strings
    /// (the projections): the digits' count in three digits, then the digits, then `+` for a
    /// place just after a record.
    #[must_use]
    pub fn order_key(&self) -> String {
        match self {
            Self::Offset(offset) => {
                let digits = offset.to_string();
                format!("{:03}{digits}", digits.len())
            }
            Self::Sequence { number, after } => {
                format!("{:03}{number}{}", number.len(), if *after { "+" } else { "" })
            }
        }
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Offset(a), Self::Offset(b)) => a.cmp(b),
            // Canonical decimals (no leading zeros): the longer is the larger.
            (Self::Sequence { number: a, after: x }, Self::Sequence { number: b, after: y }) => {
                a.len().cmp(&b.len()).then_with(|| a.cmp(b)).then_with(|| x.cmp(y))
            }
            (Self::Offset(_), Self::Sequence { .. }) => Ordering::Less,
            (Self::Sequence { .. }, Self::Offset(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Offset(offset) => write!(f, "{offset}"),
            Self::Sequence { number, after: false } => write!(f, "{number}"),
            Self::Sequence { number, after: true } => write!(f, "after {number}"),
        }
    }
}

impl From<u64> for Position {
    fn from(offset: u64) -> Self {
        Self::Offset(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(number: &str, after: bool) -> Position {
        Position::Sequence { number: number.into(), after }
    }

    #[test]
    fn sequence_numbers_order_as_numbers_wider_than_any_integer() {
        let low = "49590338271490256608559692538361571095921575989136588898";
        let high = "49590338271490256608559692538361571095921575989136588899";
        assert!(sequence(low, false) < sequence(low, true), "just after a record comes after it");
        assert!(sequence(low, true) < sequence(high, false), "and before the next one");
        assert!(sequence("99", false) < sequence("100", false), "by value, not by characters");
        let keys: Vec<String> = [sequence("99", false), sequence("99", true), sequence("100", false)]
            .iter()
            .map(Position::order_key)
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }

    #[test]
    fn offsets_are_numbers_and_their_keys_keep_their_order() {
        assert_eq!(Position::Offset(9).next(), Position::Offset(10));
        assert!(Position::Offset(9).order_key() < Position::Offset(10).order_key());
        assert_eq!(Position::Offset(7).offset(), Some(7));
        assert_eq!(Position::Offset(7).to_string(), "7");
    }
}
