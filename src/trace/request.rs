//! Per-request trace state: which trace a request belongs to, its SERVER span, and one CLIENT
//! span per upstream attempt.
//!
//! Uses only `http` types, so it works in any proxy; [`super::hooks`] wires it to Pingora's
//! phases. Time is taken from one wall-clock reading at the start plus a monotonic clock, so
//! span durations never go backwards when the system clock is adjusted.

use super::capture::Capture;
use super::export::pipeline::SpanSink;
use super::ids::{new_span_id, new_trace_id, SpanId, TraceId, FLAG_RANDOM, FLAG_SAMPLED};
use super::propagation::baggage::{parse_baggage, Baggage};
use super::propagation::w3c::{format_traceparent, parse_tracestate, TraceParentError};
use super::propagation::{self, Extracted, Outgoing, Propagator, Propagators, BAGGAGE};
use super::sampling::Sampler;
use super::span::{ClientFields, ServerFields, SpanBody, SpanLink, SpanRecord};
use crate::net::Trust;
use http::header::USER_AGENT;
use http::{HeaderMap, HeaderName};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use super::propagation::{TRACEPARENT, TRACESTATE};

/// The W3C Trace Context Level 2 `traceresponse` response header name.
pub static TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Per-process choices about what the request path does with trace context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceOptions {
    /// Head sampling (`OTEL_TRACES_SAMPLER`); `parentbased_always_on` by default.
    pub sampler: Sampler,
    /// Whose incoming `traceparent` is continued; everyone's by default.
    pub trust: Trust,
    /// Export a request that was not sampled when it ends in a server error (5xx, or failed
    /// without a response): the edge knows the outcome the head sampler could not.
    pub keep_errors: bool,
    /// Export a request that was not sampled when it took at least this long.
    pub keep_slower_than: Option<Duration>,
    /// Send `traceresponse: 00-{trace-id}-{server span id}-{flags}` on every response (W3C
    /// Trace Context Level 2, §3.4 "traceresponse" draft), so a caller learns the trace id.
    pub traceresponse: bool,
    /// A response header carrying the 32-hex trace id alone (e.g. `x-trace-id`), for support
    /// desks and clients that do not speak W3C.
    pub trace_id_header: Option<HeaderName>,
    /// Headers and query recorded on the SERVER span beyond the fixed attributes.
    pub capture: Capture,
    /// The context formats read from requests (in this order) and written upstream
    /// (`OTEL_PROPAGATORS`); `tracecontext,baggage` by default.
    pub propagators: Propagators,
}

/// The shared, per-process part of the tracing plugin: where finished spans go, and the
/// [`TraceOptions`].
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    sink: Option<SpanSink>,
    options: Arc<TraceOptions>,
}

impl Tracer {
    /// A tracer that records spans into `sink`; `None` propagates context but records nothing.
    pub fn new(sink: Option<SpanSink>) -> Self {
        Tracer {
            sink,
            options: Arc::default(),
        }
    }

    /// The same tracer with `options`.
    pub fn with_options(mut self, options: TraceOptions) -> Self {
        self.options = Arc::new(options);
        self
    }

    /// The tracer's options.
    pub fn options(&self) -> &TraceOptions {
        &self.options
    }

    /// True when spans are recorded.
    pub fn is_recording(&self) -> bool {
        self.sink.is_some()
    }

    fn submit(&self, record: SpanRecord) {
        if let Some(s) = &self.sink {
            s.submit(record);
        }
    }
}

/// What the request head says, gathered by the caller from whatever server it runs in.
pub struct RequestInfo<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The request's host (the Host header, or the URI authority for HTTP/2) without its
    /// port: `server.address`.
    pub host: Option<&'a str>,
    /// The port written after the host, if any: `server.port`.
    pub host_port: Option<u16>,
    pub client_addr: Option<SocketAddr>,
    /// The local port the request arrived on (`server.port` when the Host header has none).
    pub local_port: Option<u16>,
}

/// The trace state of one request. Create it with [`RequestTrace::start`] as soon as the
/// request head is read; call [`RequestTrace::finish`] once the response is written.
#[derive(Debug)]
pub struct RequestTrace {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    /// The sampled flag of a trusted, valid parent: what a `parentbased_*` sampler follows.
    parent_sampled: Option<bool>,
    /// An untrusted client's context, kept as a link instead of a parent.
    link: Option<SpanLink>,
    flags: u8,
    /// CLIENT spans of a request that is not sampled, held until [`RequestTrace::finish`]
    /// knows whether a keep rule exports it after all.
    held: Vec<SpanRecord>,
    tracestate: Option<Arc<str>>,
    /// A trusted client's validated `baggage`, forwarded when `baggage` is configured.
    baggage: Option<Baggage>,
    /// The formats written upstream (the tracer's, copied: it is a few bytes).
    propagators: Propagators,
    /// Why an incoming `traceparent` was refused, if it was.
    invalid_parent: Option<TraceParentError>,
    start_wall: SystemTime,
    start_mono: Instant,
    server: ServerFields,
    attempt: Option<Attempt>,
    attempts: u32,
}

/// A CLIENT span the proxy opened for a call of its own ([`RequestTrace::begin_side_call`]).
#[derive(Debug)]
pub struct SideCall {
    span_id: SpanId,
    start: Instant,
}

#[derive(Debug)]
struct Attempt {
    span_id: SpanId,
    start: Instant,
    fields: ClientFields,
    connected_at: Option<Instant>,
    first_byte_at: Option<Instant>,
    ended_at: Option<Instant>,
}

impl RequestTrace {
    /// Starts the trace of a request: continues a valid incoming context from a trusted client,
    /// or starts a new trace (keeping an untrusted client's context as a link), and makes the
    /// head sampling decision with the tracer's sampler.
    ///
    /// The context is read from the tracer's propagators in their configured order: the first
    /// format present and valid wins. The trust policy applies to every format alike.
    /// `tracestate` is only kept with a context that came from `traceparent`; `baggage` only
    /// from a trusted client.
    pub fn start(tracer: &Tracer, req: &RequestInfo<'_>) -> RequestTrace {
        let options = tracer.options();
        let start_wall = SystemTime::now();
        let start_mono = Instant::now();
        let propagators = options.propagators;
        let found = propagation::extract(&propagators, req.headers);
        // Only asked when the client sent something the trust policy decides about.
        let mut trusted = None;
        let mut trusts = || {
            *trusted.get_or_insert_with(|| options.trust.trusts(req.client_addr.map(|a| a.ip())))
        };
        let mut link = None;
        let mut trace_id = None;
        let mut parent = None;
        let mut parent_flags = None;
        let mut parent_sampled = None;
        let mut tracestate = None;
        match found.found {
            Some((source, Extracted::Context(ctx))) if trusts() => {
                trace_id = Some(ctx.trace_id);
                parent = Some(ctx.span_id);
                parent_flags = Some(ctx.w3c_flags());
                // B3 may defer the decision: then the sampler decides as for a new trace.
                parent_sampled = ctx.sampled;
                if source == Propagator::TraceContext {
                    // §3.3.1: tracestate is only meaningful with a valid traceparent.
                    tracestate = parse_tracestate(
                        req.headers
                            .get_all(&TRACESTATE)
                            .iter()
                            .map(|v| v.as_bytes()),
                    )
                    .map(|t| Arc::<str>::from(t.as_str()));
                }
            }
            // An untrusted client's context: a new trace, which links to it. Its flags and
            // tracestate are not carried on, so it can neither force nor suppress sampling.
            Some((_, Extracted::Context(ctx))) => {
                link = Some(SpanLink {
                    trace_id: ctx.trace_id,
                    span_id: ctx.span_id,
                    flags: ctx.w3c_flags(),
                });
            }
            // B3's decision without ids: a new trace, sampled as a trusted caller asked.
            Some((_, Extracted::SamplingOnly(sampled))) if trusts() => {
                parent_sampled = Some(sampled);
            }
            Some((_, Extracted::SamplingOnly(_))) | None => {}
        }
        let trace_id = trace_id.unwrap_or_else(new_trace_id);
        // §4.2: an invalid traceparent restarts the trace (unless another configured format
        // carried a valid context) and its tracestate is discarded.
        let invalid_parent = found.invalid_traceparent;
        // Baggage is passed through from trusted clients only; nothing is allocated when the
        // request has none.
        let baggage = if propagators.contains(Propagator::Baggage)
            && req.headers.contains_key(&BAGGAGE)
            && trusts()
        {
            parse_baggage(req.headers.get_all(&BAGGAGE).iter().map(|v| v.as_bytes()))
        } else {
            None
        };
        // A continued trace keeps the caller's random flag (§3.2.2.5.2); ids made here are
        // random. The sampled flag is this hop's decision, set by `decide_sampling` below.
        let random = parent_flags.map_or(FLAG_RANDOM, |f| f & FLAG_RANDOM);
        let (server_address, host_port) = match req.host {
            Some(h) if !h.is_empty() => (Some(h.to_ascii_lowercase()), req.host_port),
            _ => (None, None),
        };
        let server = ServerFields {
            method: req.method.clone(),
            route: None,
            middleware: None,
            path: req.uri.path().to_owned(),
            query: options.capture.url_query(req.uri.query()),
            scheme: req.scheme,
            server_address,
            server_port: host_port.or(req.local_port),
            client_address: req.client_addr.map(|a| a.ip()),
            client_port: req.client_addr.map(|a| a.port()),
            user_agent: req
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            protocol_version: protocol_version(req.version),
            status: 0,
            error_type: None,
            request_headers: options.capture.request_headers(req.headers),
            response_headers: Vec::new(),
        };
        let mut trace = RequestTrace {
            trace_id,
            span_id: new_span_id(),
            parent,
            parent_sampled,
            link,
            flags: random,
            held: Vec::new(),
            tracestate,
            baggage,
            propagators,
            invalid_parent,
            start_wall,
            start_mono,
            server,
            attempt: None,
            attempts: 0,
        };
        trace.decide_sampling(tracer, None);
        trace
    }

    /// The trace id of this request.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The SERVER span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The incoming parent span id, when the trace was continued.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent
    }
    /// True when this request's spans are recorded (the sampled flag).
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
    /// Why an incoming `traceparent` was ignored, if one was.
    pub fn invalid_parent(&self) -> Option<TraceParentError> {
        self.invalid_parent
    }

    /// How many upstream attempts have begun.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records the matched route (`http.route`, and the span name `{METHOD} {route}`).
    pub fn set_route(&mut self, route: Arc<str>) {
        self.server.route = Some(route);
    }

    /// Records the route middleware that answered the request itself
    /// (`tracegate.middleware`): a refusal (403, 429, 401, 413), a preflight, an auth
    /// server's answer.
    pub fn set_middleware(&mut self, name: Arc<str>) {
        self.server.middleware = Some(name);
    }

    /// Applies a route's own sampling ratio: decides again as if the root sampler were
    /// `traceidratio(ratio)`. A trusted parent still decides under a `parentbased_*` sampler.
    /// Call it before anything is sent upstream (the decision travels in `traceparent`).
    pub fn apply_route_ratio(&mut self, tracer: &Tracer, ratio: f64) {
        self.decide_sampling(tracer, Some(ratio));
    }

    /// Sets the sampled flag from the tracer's sampler (with a route's ratio, if any).
    fn decide_sampling(&mut self, tracer: &Tracer, route_ratio: Option<f64>) {
        let sampled = tracer.options().sampler.should_sample(
            &self.trace_id,
            self.parent_sampled,
            route_ratio,
        );
        self.flags = (self.flags & !FLAG_SAMPLED) | if sampled { FLAG_SAMPLED } else { 0 };
    }

    /// Starts a CLIENT span for an upstream attempt to `backend`; `path` is the path sent
    /// upstream (without query). An attempt still open (a failed try before a retry) is
    /// finished first.
    pub fn begin_attempt(
        &mut self,
        tracer: &Tracer,
        upstream: Arc<str>,
        backend: SocketAddr,
        path: String,
    ) {
        self.end_attempt(tracer);
        let fields = ClientFields {
            method: self.server.method.clone(),
            upstream: Some(upstream),
            backend: Some(backend),
            path,
            resend_count: self.attempts,
            ..Default::default()
        };
        self.attempts += 1;
        self.attempt = Some(Attempt {
            span_id: new_span_id(),
            start: Instant::now(),
            fields,
            connected_at: None,
            first_byte_at: None,
            ended_at: None,
        });
    }

    /// The CLIENT span of the current attempt, when one is open and the request is sampled
    /// (only then is the span exported, so only then can a record point at it).
    pub fn attempt_span_id(&self) -> Option<SpanId> {
        self.attempt
            .as_ref()
            .filter(|_| self.is_sampled())
            .map(|a| a.span_id)
    }

    /// The current attempt goes to its backend over TLS (`https` in `url.full`).
    pub fn set_attempt_tls(&mut self) {
        if let Some(a) = &mut self.attempt {
            a.fields.tls = true;
        }
    }

    /// The HTTP version the upstream answered with (`network.protocol.version`).
    pub fn attempt_protocol(&mut self, version: http::Version) {
        if let Some(a) = &mut self.attempt {
            a.fields.protocol_version = Some(protocol_version(version));
        }
    }

    /// The current attempt has a connection: `reused` from the pool, or new after `connect`.
    pub fn attempt_connected(&mut self, reused: bool, connect: Option<Duration>) {
        if let Some(a) = &mut self.attempt {
            a.connected_at = Some(Instant::now());
            a.fields.connection_reused = Some(reused);
            a.fields.connect_duration = if reused { None } else { connect };
        }
    }

    /// The upstream's response header arrived (the first one is the time to first byte).
    pub fn attempt_response(&mut self, status: u16) {
        if let Some(a) = &mut self.attempt {
            a.first_byte_at.get_or_insert_with(Instant::now);
            // Other 1xx are interim; 101 Switching Protocols ends the HTTP exchange
            // (RFC 9110 §15.2.2).
            if status >= 200 || status == 101 {
                a.fields.status = Some(status);
            }
        }
    }

    /// The upstream response has been received in full.
    pub fn attempt_done(&mut self) {
        if let Some(a) = &mut self.attempt {
            a.ended_at.get_or_insert_with(Instant::now);
        }
    }

    /// The current attempt failed (`error.type` plus a description for the span status).
    pub fn attempt_failed(&mut self, error_type: Cow<'static, str>, message: String) {
        if let Some(a) = &mut self.attempt {
            a.ended_at.get_or_insert_with(Instant::now);
            if a.fields.error_type.is_none() {
                a.fields.error_type = Some(error_type);
                a.fields.error_message = Some(message);
            }
        }
    }

    /// The `traceparent` to send upstream: this trace, with the current CLIENT span as parent
    /// (or the SERVER span when no attempt is open).
    pub fn upstream_traceparent(&self) -> [u8; 55] {
        let span = self.attempt.as_ref().map_or(self.span_id, |a| a.span_id);
        format_traceparent(&self.trace_id, &span, self.flags)
    }

    /// The `tracestate` to send upstream, if any.
    pub fn upstream_tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The `baggage` to send upstream, if any (a trusted client's, validated).
    pub fn upstream_baggage(&self) -> Option<&str> {
        self.baggage.as_ref().map(Baggage::as_str)
    }

    /// The propagation formats this request writes upstream.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    /// The header changes for the request going upstream, the one source for every adapter:
    /// `edit(name, Some(value))` replaces all values of `name`, `edit(name, None)` removes it.
    /// For each configured format the client's headers are replaced by this trace's context
    /// (the current CLIENT span as parent); other formats' headers are not touched. See
    /// [`propagation::upstream_edits`].
    pub fn upstream_edits(&self, edit: impl FnMut(&'static HeaderName, Option<&[u8]>)) {
        let out = Outgoing {
            trace_id: self.trace_id,
            span_id: self.attempt.as_ref().map_or(self.span_id, |a| a.span_id),
            flags: self.flags,
            tracestate: self.upstream_tracestate(),
            baggage: self.upstream_baggage(),
        };
        propagation::upstream_edits(&self.propagators, &out, edit);
    }

    /// Applies [`RequestTrace::upstream_edits`] to an outgoing header map: the configured
    /// formats' headers (by default `traceparent`, `tracestate` and `baggage`) replace any
    /// incoming ones.
    pub fn inject(&self, headers: &mut HeaderMap) {
        self.upstream_edits(|name, value| match value {
            None => {
                headers.remove(name);
            }
            Some(v) => match http::HeaderValue::from_bytes(v) {
                Ok(v) => {
                    headers.insert(name.clone(), v);
                }
                // Only validated values reach here; never forward one that is not.
                Err(_) => {
                    headers.remove(name);
                }
            },
        });
    }

    /// The response headers `options` ask for: `traceresponse` naming this request's SERVER
    /// span, and/or the bare trace id under the configured name. Calls `f` for each.
    pub fn response_headers(
        &self,
        options: &TraceOptions,
        mut f: impl FnMut(&HeaderName, http::HeaderValue),
    ) {
        if options.traceresponse {
            let v = format_traceparent(&self.trace_id, &self.span_id, self.flags);
            f(
                &TRACERESPONSE,
                http::HeaderValue::from_bytes(&v).expect("traceresponse is ASCII"),
            );
        }
        if let Some(name) = &options.trace_id_header {
            let hex = self.trace_id.to_hex();
            f(
                name,
                http::HeaderValue::from_str(&hex).expect("hex is a valid header value"),
            );
        }
    }

    /// Records the response headers on the capture allowlist from the response going
    /// downstream. A later call (a response replaced before it was sent) replaces them.
    pub fn capture_response_headers(&mut self, options: &TraceOptions, headers: &HeaderMap) {
        if options.capture.wants_response_headers() {
            self.server.response_headers = options.capture.response_headers(headers);
        }
    }

    /// Finishes the request: ends an open attempt and the SERVER span, and hands the spans to
    /// the tracer. `status` is what was written downstream (0 for none); `error_type` names a
    /// failure that has no status (e.g. the client went away).
    pub fn finish(mut self, tracer: &Tracer, status: u16, error_type: Option<Cow<'static, str>>) {
        self.end_attempt(tracer);
        if !tracer.is_recording() {
            return;
        }
        if !self.is_sampled() {
            let o = tracer.options();
            let failed = status >= 500 || (status == 0 && error_type.is_some());
            let slow = o
                .keep_slower_than
                .is_some_and(|t| self.start_mono.elapsed() >= t);
            if !((o.keep_errors && failed) || slow) {
                return;
            }
            for r in std::mem::take(&mut self.held) {
                tracer.submit(r);
            }
        }
        self.server.status = status;
        self.server.error_type = error_type;
        let record = SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            parent_is_remote: self.parent.is_some(),
            flags: self.flags,
            tracestate: self.tracestate.clone(),
            start: self.start_wall,
            end: self.wall(Instant::now()),
            link: self.link,
            body: SpanBody::Server(Box::new(std::mem::take(&mut self.server))),
        };
        tracer.submit(record);
    }

    fn end_attempt(&mut self, tracer: &Tracer) {
        let Some(a) = self.attempt.take() else {
            return;
        };
        let end = a.ended_at.unwrap_or_else(Instant::now);
        let mut fields = a.fields;
        fields.connected_at = a.connected_at.map(|t| self.wall(t));
        fields.first_byte_at = a.first_byte_at.map(|t| self.wall(t));
        self.emit_client(tracer, a.span_id, a.start, end, fields);
    }

    /// Starts a CLIENT span for a call the proxy makes on the request's behalf before it goes
    /// upstream (a `forward_auth` check), a child of the SERVER span.
    pub fn begin_side_call(&self) -> SideCall {
        SideCall {
            span_id: new_span_id(),
            start: Instant::now(),
        }
    }

    /// The `traceparent` to send with a side call: this trace, the call's span as parent.
    pub fn side_call_traceparent(&self, call: &SideCall) -> [u8; 55] {
        format_traceparent(&self.trace_id, &call.span_id, self.flags)
    }

    /// Ends a side call's CLIENT span with what it did: `fields` name the middleware
    /// (`tracegate.middleware`, and the span name `{METHOD} {middleware}`), the server, the
    /// status or the failure.
    pub fn end_side_call(&mut self, tracer: &Tracer, call: SideCall, fields: ClientFields) {
        self.emit_client(tracer, call.span_id, call.start, Instant::now(), fields);
    }

    /// Exports (or holds, when the request is not sampled but a keep rule may still want it)
    /// one CLIENT span under the SERVER span.
    fn emit_client(
        &mut self,
        tracer: &Tracer,
        span_id: SpanId,
        start: Instant,
        end: Instant,
        fields: ClientFields,
    ) {
        if !tracer.is_recording() {
            return;
        }
        let hold = !self.is_sampled();
        if hold {
            let o = tracer.options();
            if !o.keep_errors && o.keep_slower_than.is_none() {
                return;
            }
        }
        let record = SpanRecord {
            trace_id: self.trace_id,
            span_id,
            parent: Some(self.span_id),
            parent_is_remote: false,
            flags: self.flags,
            tracestate: self.tracestate.clone(),
            start: self.wall(start),
            end: self.wall(end),
            link: None,
            body: SpanBody::Client(Box::new(fields)),
        };
        if hold {
            self.held.push(record);
        } else {
            tracer.submit(record);
        }
    }

    /// Converts a monotonic instant to wall-clock time relative to the request start.
    fn wall(&self, t: Instant) -> SystemTime {
        self.start_wall + t.saturating_duration_since(self.start_mono)
    }
}

/// `network.protocol.version` of an HTTP version, as the SERVER and CLIENT spans write it (and
/// the access log, which must agree with the span).
pub fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(
        headers: &'a HeaderMap,
        uri: &'a http::Uri,
        method: &'a http::Method,
    ) -> RequestInfo<'a> {
        RequestInfo {
            method,
            uri,
            version: http::Version::HTTP_11,
            headers,
            scheme: "http",
            host: None,
            host_port: None,
            client_addr: Some("10.1.2.3:5555".parse().unwrap()),
            local_port: Some(8080),
        }
    }

    #[test]
    fn continues_a_valid_context_and_replaces_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h.insert("tracestate", "rojo=1".parse().unwrap());
        h.insert("host", "API.example.com:8443".parse().unwrap());
        let uri: http::Uri = "/x?secret=1".parse().unwrap();
        let req = RequestInfo {
            host: Some("API.example.com"),
            host_port: Some(8443),
            ..info(&h, &uri, &http::Method::GET)
        };
        let t = RequestTrace::start(&Tracer::default(), &req);
        assert_eq!(t.trace_id().to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id().unwrap().to_hex(), "00f067aa0ba902b7");
        assert_eq!(t.server.server_address.as_deref(), Some("api.example.com"));
        assert_eq!(t.server.server_port, Some(8443));
        assert_eq!(t.server.path, "/x", "url.path never carries the query");
        let mut out = h.clone();
        t.inject(&mut out);
        assert_eq!(out.get_all("traceparent").iter().count(), 1);
        let tp = out.get("traceparent").unwrap().to_str().unwrap();
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "the parent-id is ours now"
        );
        assert_eq!(out.get("tracestate").unwrap(), "rojo=1");
    }

    #[test]
    fn response_headers_name_the_server_span() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let uri: http::Uri = "/".parse().unwrap();
        let t = RequestTrace::start(&Tracer::default(), &info(&h, &uri, &http::Method::GET));
        // (options, expected headers, reason)
        let cases = [
            (TraceOptions::default(), vec![], "nothing unless configured"),
            (
                TraceOptions {
                    traceresponse: true,
                    trace_id_header: Some(HeaderName::from_static("x-trace-id")),
                    ..TraceOptions::default()
                },
                vec![
                    (
                        "traceresponse",
                        format!(
                            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                            t.span_id().to_hex()
                        ),
                    ),
                    ("x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
                ],
                "the child-id is the SERVER span, not the caller's parent",
            ),
        ];
        for (options, want, why) in cases {
            let mut got = Vec::new();
            t.response_headers(&options, |n, v| {
                got.push((n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            });
            let want: Vec<_> = want.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
            assert_eq!(got, want, "{why}");
        }
    }

    fn tracer(propagators: &[&str], trust: Trust) -> Tracer {
        Tracer::default().with_options(TraceOptions {
            propagators: Propagators::from_names(propagators.iter().copied()).unwrap(),
            trust,
            ..TraceOptions::default()
        })
    }

    fn start_with(tracer: &Tracer, pairs: &[(&str, &str)]) -> (RequestTrace, HeaderMap) {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let uri: http::Uri = "/".parse().unwrap();
        let t = RequestTrace::start(tracer, &info(&h, &uri, &http::Method::GET));
        (t, h)
    }

    const B3_IN: &str = "a3ce929d0e0e4736-00f067aa0ba902b7-0";

    #[test]
    fn b3_context_is_continued_from_a_trusted_client_and_linked_otherwise() {
        let headers = [("b3", B3_IN), ("tracestate", "rojo=1"), ("baggage", "k=v")];
        let tr = tracer(&["b3", "tracecontext", "baggage"], Trust::All);
        let (t, h) = start_with(&tr, &headers);
        assert_eq!(t.trace_id().to_hex(), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id().unwrap().to_hex(), "00f067aa0ba902b7");
        assert!(!t.is_sampled(), "parentbased follows the B3 deny");
        assert_eq!(
            t.flags & FLAG_RANDOM,
            0,
            "a B3 trace id makes no randomness promise"
        );
        assert_eq!(
            t.upstream_tracestate(),
            None,
            "tracestate only with traceparent"
        );
        assert_eq!(t.upstream_baggage(), Some("k=v"));
        let mut out = h.clone();
        t.inject(&mut out);
        let b3 = out.get("b3").unwrap().to_str().unwrap();
        assert_eq!(
            b3,
            format!(
                "0000000000000000a3ce929d0e0e4736-{}-0",
                t.span_id().to_hex()
            )
        );
        assert!(
            out.get("tracestate").is_none(),
            "the client's tracestate is removed"
        );
        assert_eq!(out.get("baggage").unwrap(), "k=v");

        let untrusted = tracer(&["b3", "tracecontext", "baggage"], Trust::None);
        let (t, h) = start_with(&untrusted, &headers);
        assert!(t.parent_span_id().is_none());
        assert_ne!(t.trace_id().to_hex(), "0000000000000000a3ce929d0e0e4736");
        assert!(
            t.is_sampled(),
            "the untrusted 'deny' does not suppress sampling"
        );
        let link = t.link.expect("linked");
        assert_eq!(link.span_id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(
            t.upstream_baggage(),
            None,
            "an untrusted client's baggage is dropped"
        );
        let mut out = h.clone();
        t.inject(&mut out);
        assert!(out.get("baggage").is_none());
    }

    #[test]
    fn b3_sampling_only_decides_for_a_new_trace() {
        let tr = tracer(&["b3"], Trust::All);
        let (t, _) = start_with(&tr, &[("b3", "0")]);
        assert!(t.parent_span_id().is_none());
        assert!(!t.is_sampled(), "b3: 0 from a trusted caller");
        let (t, _) = start_with(&tracer(&["b3"], Trust::None), &[("b3", "0")]);
        assert!(t.is_sampled(), "ignored from an untrusted caller");
        assert!(t.link.is_none(), "nothing to link to");
    }

    #[test]
    fn formats_not_configured_are_neither_read_nor_written() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tr = tracer(&["b3multi"], Trust::All);
        let (t, h) = start_with(
            &tr,
            &[("traceparent", tp), ("baggage", "k=v"), ("x-b3-flags", "1")],
        );
        assert!(t.parent_span_id().is_none(), "traceparent is not read");
        let mut out = h.clone();
        t.inject(&mut out);
        assert_eq!(out.get("traceparent").unwrap(), tp, "nor written");
        assert_eq!(out.get("baggage").unwrap(), "k=v");
        assert!(out.get("x-b3-flags").is_none(), "b3multi headers are ours");
        assert_eq!(
            out.get("x-b3-traceid").unwrap(),
            t.trace_id().to_hex().as_str()
        );
        assert_eq!(
            out.get("x-b3-spanid").unwrap(),
            t.span_id().to_hex().as_str()
        );
        assert_eq!(out.get("x-b3-sampled").unwrap(), "1");
    }

    #[test]
    fn invalid_context_restarts_and_drops_tracestate() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h.insert("tracestate", "rojo=1".parse().unwrap());
        let uri: http::Uri = "/".parse().unwrap();
        let t = RequestTrace::start(&Tracer::default(), &info(&h, &uri, &http::Method::GET));
        assert!(t.parent_span_id().is_none());
        assert_eq!(t.invalid_parent(), Some(TraceParentError::ZeroTraceId));
        let mut out = h.clone();
        t.inject(&mut out);
        assert!(out.get("tracestate").is_none());
        assert!(t.is_sampled());
    }
}
