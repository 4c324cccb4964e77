//! Which requests get a line: `access_log.filters`. A line is kept when any filter matches
//! (issue 13 §1), and every line is kept when there is none.

use std::time::Duration;

/// `filters: { status: ["5xx", 404], slower_than: 500ms }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Inclusive status ranges (`404` is `(404, 404)`, `5xx` is `(500, 599)`); empty: no
    /// status filter.
    pub status: Vec<(u16, u16)>,
    /// Requests that took at least this long.
    pub slower_than: Option<Duration>,
}

impl Filters {
    /// No filter: every line is kept.
    pub fn is_empty(&self) -> bool {
        self.status.is_empty() && self.slower_than.is_none()
    }

    /// Whether a request that ended with `status` (as logged: 499 for one without a response)
    /// after `duration` gets a line.
    pub fn keep(&self, status: u16, duration: Duration) -> bool {
        self.is_empty()
            || self
                .status
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&status))
            || self.slower_than.is_some_and(|t| duration >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_table() {
        let ms = Duration::from_millis;
        let both = Filters {
            status: vec![(500, 599), (404, 404)],
            slower_than: Some(ms(500)),
        };
        let status_only = Filters {
            status: vec![(404, 404)],
            slower_than: None,
        };
        let slow_only = Filters {
            status: Vec::new(),
            slower_than: Some(ms(500)),
        };
        let none = Filters::default();
        // (filters, status, duration, kept, reason)
        let cases: &[(&Filters, u16, Duration, bool, &str)] = &[
            (&none, 200, ms(1), true, "no filters: every line"),
            (
                &none,
                499,
                ms(0),
                true,
                "no filters: a client that left too",
            ),
            (&both, 503, ms(1), true, "a 5xx matches the class"),
            (&both, 404, ms(1), true, "an exact code matches"),
            (&both, 200, ms(1), false, "fast 200: neither matches"),
            (&both, 403, ms(1), false, "403 is neither 404 nor 5xx"),
            (&both, 200, ms(500), true, "at the threshold counts as slow"),
            (&both, 200, ms(499), false, "just under the threshold"),
            (&both, 404, ms(900), true, "both match: kept once"),
            (&status_only, 200, ms(10_000), false, "no duration filter"),
            (&slow_only, 500, ms(1), false, "no status filter"),
            (&slow_only, 200, ms(501), true, "slow only"),
            (
                &Filters {
                    status: vec![(499, 499)],
                    slower_than: None,
                },
                499,
                ms(1),
                true,
                "clients that left are filtered as 499",
            ),
        ];
        for (f, status, d, kept, why) in cases {
            assert_eq!(f.keep(*status, *d), *kept, "{why}");
        }
    }
}
