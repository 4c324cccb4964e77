//! Head sampling: the OpenTelemetry SDK samplers by their `OTEL_TRACES_SAMPLER` names, decided
//! from the trace id alone so every hop that uses the same rule agrees.
//!
//! Names and behaviour follow the OpenTelemetry SDK specification, "Built-in samplers"
//! (<https://opentelemetry.io/docs/specs/otel/trace/sdk/#built-in-samplers>): `always_on`,
//! `always_off`, `traceidratio`, and `parentbased_*`, where a valid parent's sampled flag
//! decides and the named sampler only decides for new traces.

use super::ids::TraceId;

/// What decides for a trace that has no (trusted) parent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    /// Sample this fraction of trace ids, in `[0, 1]`.
    Ratio(f64),
}

/// A configured sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub root: RootSampler,
    /// When true, a valid parent's sampled flag decides (`parentbased_*`).
    pub parent_based: bool,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the OpenTelemetry SDK default.
    fn default() -> Self {
        Sampler {
            root: RootSampler::AlwaysOn,
            parent_based: true,
        }
    }
}

/// The sampler names this module understands, for error messages.
pub const SAMPLER_NAMES: &str = "always_on, always_off, traceidratio, parentbased_always_on, \
                                 parentbased_always_off, parentbased_traceidratio";

impl Sampler {
    /// The sampler called `name` (an `OTEL_TRACES_SAMPLER` value); `ratio` is the argument of
    /// the `traceidratio` variants (`OTEL_TRACES_SAMPLER_ARG`, default 1.0) and must not be
    /// given for the others.
    pub fn from_name(name: &str, ratio: Option<f64>) -> Result<Sampler, String> {
        let (parent_based, root) = match name.trim() {
            "always_on" => (false, "always_on"),
            "always_off" => (false, "always_off"),
            "traceidratio" => (false, "traceidratio"),
            "parentbased_always_on" => (true, "always_on"),
            "parentbased_always_off" => (true, "always_off"),
            "parentbased_traceidratio" => (true, "traceidratio"),
            other => {
                return Err(format!(
                    "unknown sampler {other:?}: expected one of {SAMPLER_NAMES}"
                ))
            }
        };
        let root = match root {
            "traceidratio" => RootSampler::Ratio(check_ratio(ratio.unwrap_or(1.0))?),
            _ if ratio.is_some() => {
                return Err(format!(
                    "a ratio only applies to the traceidratio samplers, not {name}"
                ))
            }
            "always_on" => RootSampler::AlwaysOn,
            _ => RootSampler::AlwaysOff,
        };
        Ok(Sampler { root, parent_based })
    }

    /// The OpenTelemetry name of this sampler.
    pub fn name(&self) -> &'static str {
        match (self.parent_based, self.root) {
            (false, RootSampler::AlwaysOn) => "always_on",
            (false, RootSampler::AlwaysOff) => "always_off",
            (false, RootSampler::Ratio(_)) => "traceidratio",
            (true, RootSampler::AlwaysOn) => "parentbased_always_on",
            (true, RootSampler::AlwaysOff) => "parentbased_always_off",
            (true, RootSampler::Ratio(_)) => "parentbased_traceidratio",
        }
    }

    /// Whether a trace is sampled. `parent_sampled` is the sampled flag of a valid, trusted
    /// parent (`None` for a new trace); `route_ratio` replaces the root sampler with
    /// `traceidratio(route_ratio)` (a route's own ratio). A parent decides only for the
    /// `parentbased_*` samplers; the others ignore it (SDK spec: TraceIdRatioBased "MUST
    /// ignore the parent SampledFlag").
    pub fn should_sample(
        &self,
        trace_id: &TraceId,
        parent_sampled: Option<bool>,
        route_ratio: Option<f64>,
    ) -> bool {
        if self.parent_based {
            if let Some(p) = parent_sampled {
                return p;
            }
        }
        match route_ratio.map_or(self.root, RootSampler::Ratio) {
            RootSampler::AlwaysOn => true,
            RootSampler::AlwaysOff => false,
            RootSampler::Ratio(r) => ratio_sampled(trace_id, r),
        }
    }
}

/// A ratio must be a probability.
pub fn check_ratio(r: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("ratio {r} is not between 0 and 1"))
    }
}

/// `traceidratio`: the rightmost 56 bits of the trace id are its randomness (W3C Trace Context
/// Level 2 §3.2.2.5.2: with the random flag, the rightmost 7 bytes are random; ids generated
/// here always are). The trace is sampled when that value R is at least the rejection threshold
/// T = (1 − ratio) × 2^56, the rule of OpenTelemetry's probability sampling
/// (<https://opentelemetry.io/docs/specs/otel/trace/tracestate-probability-sampling/>), so a
/// downstream SDK with the same or a smaller ratio keeps what the edge kept.
pub fn ratio_sampled(trace_id: &TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut r = [0u8; 8];
    r[1..].copy_from_slice(&trace_id.0[9..]);
    let randomness = u64::from_be_bytes(r);
    let threshold = ((1.0 - ratio) * (1u64 << 56) as f64) as u64;
    randomness >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low56: u64) -> TraceId {
        let mut b = [0xab; 16];
        b[8..].copy_from_slice(&low56.to_be_bytes());
        b[8] = 0xcd; // not part of the randomness
        TraceId(b)
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        // (name, ratio, expected name or error fragment, reason)
        type Case = (
            &'static str,
            Option<f64>,
            Result<&'static str, &'static str>,
            &'static str,
        );
        let cases: [Case; 9] = [
            ("always_on", None, Ok("always_on"), "plain"),
            (
                "parentbased_always_off",
                None,
                Ok("parentbased_always_off"),
                "parent based",
            ),
            (
                "traceidratio",
                Some(0.25),
                Ok("traceidratio"),
                "with its ratio",
            ),
            (
                "traceidratio",
                None,
                Ok("traceidratio"),
                "ratio defaults to 1.0",
            ),
            (
                "parentbased_traceidratio",
                Some(0.0),
                Ok("parentbased_traceidratio"),
                "zero is a ratio",
            ),
            (
                "traceidratio",
                Some(1.5),
                Err("not between 0 and 1"),
                "not a probability",
            ),
            (
                "traceidratio",
                Some(f64::NAN),
                Err("not between 0 and 1"),
                "NaN",
            ),
            (
                "always_on",
                Some(0.5),
                Err("only applies"),
                "a ratio for a sampler without one",
            ),
            (
                "jaeger_remote",
                None,
                Err("unknown sampler"),
                "not supported",
            ),
        ];
        for (name, ratio, want, why) in cases {
            match (Sampler::from_name(name, ratio), want) {
                (Ok(s), Ok(n)) => assert_eq!(s.name(), n, "{why}"),
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{why}: {e}"),
                (got, _) => panic!("{why}: got {got:?}"),
            }
        }
    }

    #[test]
    fn decisions() {
        let on = Sampler::from_name("parentbased_always_on", None).unwrap();
        let off = Sampler::from_name("parentbased_always_off", None).unwrap();
        let plain_off = Sampler::from_name("always_off", None).unwrap();
        let half = Sampler::from_name("traceidratio", Some(0.5)).unwrap();
        let low = id(0x00_0000_0000_0001); // R tiny: only sampled at ratio 1
        let high = id(0xff_ffff_ffff_fffe); // R near 2^56: sampled at any ratio > 0
                                            // (sampler, trace id, parent flag, route ratio, expected, reason)
        let cases = [
            (on, low, None, None, true, "new trace, always_on root"),
            (
                on,
                low,
                Some(false),
                None,
                false,
                "parent not sampled decides",
            ),
            (
                off,
                low,
                Some(true),
                None,
                true,
                "parent sampled decides over always_off",
            ),
            (off, high, None, None, false, "new trace, always_off root"),
            (
                plain_off,
                high,
                Some(true),
                None,
                false,
                "non-parent-based ignores the parent",
            ),
            (
                half,
                high,
                Some(false),
                None,
                true,
                "traceidratio ignores the parent flag",
            ),
            (half, low, None, None, false, "R below the threshold"),
            (
                off,
                high,
                None,
                Some(0.5),
                true,
                "a route ratio replaces the root sampler",
            ),
            (
                on,
                high,
                None,
                Some(0.0),
                false,
                "route ratio 0 drops new traces",
            ),
            (
                on,
                low,
                Some(true),
                Some(0.0),
                true,
                "a route ratio never overrides a parent",
            ),
        ];
        for (s, t, parent, route, want, why) in cases {
            assert_eq!(s.should_sample(&t, parent, route), want, "{why}");
        }
    }

    #[test]
    fn ratio_threshold_keeps_about_the_ratio() {
        // Evenly spread randomness values: the kept share equals the ratio within 1/1000.
        for ratio in [0.001, 0.1, 0.25, 0.5, 0.9] {
            let n = 10_000u64;
            let kept = (0..n)
                .filter(|i| {
                    ratio_sampled(&id(((u128::from(*i) << 56) / u128::from(n)) as u64), ratio)
                })
                .count() as f64;
            assert!((kept / n as f64 - ratio).abs() <= 0.001, "{ratio}: {kept}");
        }
    }
}
