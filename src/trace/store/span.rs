//! One stored span in a form that does not depend on where it came from: a span tracegate
//! recorded itself, or one that a service sent to the OTLP intake. Readers (the viewer's pages
//! and its Jaeger-compatible API) see every span as a [`SpanSnapshot`].
//!
//! tracegate's own spans are kept as their [`SpanRecord`] (a clone is far cheaper on the
//! exporter thread than formatting every attribute), and turned into snapshots only when a
//! page asks for them, through the same attribute view the OTLP encoder reads
//! ([`SpanRecord::for_each_attribute`]), so the viewer and the exported span cannot disagree.

use crate::trace::capture::CapturedHeader;
use crate::trace::ids::{SpanId, TraceId};
use crate::trace::span::{AttrScratch, AttrValue, Kind, SpanBody, SpanRecord};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// An attribute value, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    F64(f64),
    /// Bytes (OTLP `bytesValue`).
    Bytes(Vec<u8>),
    /// An array or a map, kept as its JSON text.
    Json(String),
}

/// What the allocator keeps besides the bytes of each heap block (its header and rounding up
/// to a size class), as a flat estimate: many small values cost more than their length.
pub(super) const ALLOC_OVERHEAD: usize = 16;

/// The heap bytes a buffer of `capacity` holds, with the allocator's overhead.
pub(super) fn heap(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity + ALLOC_OVERHEAD
    }
}

impl Value {
    fn bytes(&self) -> usize {
        match self {
            Value::Str(s) | Value::Json(s) => heap(s.capacity()),
            Value::Bytes(b) => heap(b.capacity()),
            _ => 0,
        }
    }
}

/// One key and its value.
pub type Attribute = (String, Value);

/// Who produced a span: the `service.name` and the rest of its resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub service: String,
    pub tags: Vec<Attribute>,
}

impl Process {
    /// What the process holds, in bytes (shared by its spans, counted once per intake request).
    pub(super) fn bytes(&self) -> usize {
        heap(size_of::<Process>())
            + heap(self.service.capacity())
            + heap(self.tags.capacity() * size_of::<Attribute>())
            + self
                .tags
                .iter()
                .map(|(k, v)| heap(k.capacity()) + v.bytes())
                .sum::<usize>()
    }
}

/// The OpenTelemetry span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The lowercase name Jaeger's `span.kind` tag uses (empty for unspecified).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// A span status.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Unset,
    Ok,
    Error(String),
}

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    pub attributes: Vec<Attribute>,
}

/// A link to another span (possibly of another trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A span as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSnapshot {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub flags: u8,
    pub name: String,
    pub kind: SpanKind,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub duration_us: u64,
    pub attributes: Vec<Attribute>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub status: Status,
    /// The instrumentation scope's name and version, when known.
    pub scope: Option<(String, String)>,
    pub process: Arc<Process>,
}

impl SpanSnapshot {
    /// The value of attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True when the span's status is Error.
    pub fn is_error(&self) -> bool {
        matches!(self.status, Status::Error(_))
    }

    /// What the span holds, roughly, in bytes (its process is shared and counted apart).
    pub(super) fn bytes(&self) -> usize {
        // Every String and Vec is a heap block of its capacity.
        let attrs = |a: &Vec<Attribute>| -> usize {
            heap(a.capacity() * size_of::<Attribute>())
                + a.iter()
                    .map(|(k, v)| heap(k.capacity()) + v.bytes())
                    .sum::<usize>()
        };
        heap(size_of::<SpanSnapshot>())
            + heap(self.name.capacity())
            + attrs(&self.attributes)
            + heap(self.events.capacity() * size_of::<Event>())
            + self
                .events
                .iter()
                .map(|e| heap(e.name.capacity()) + attrs(&e.attributes))
                .sum::<usize>()
            + heap(self.links.capacity() * size_of::<Link>())
            + match &self.status {
                Status::Error(m) => heap(m.capacity()),
                _ => 0,
            }
            + self
                .scope
                .as_ref()
                .map_or(0, |(n, v)| heap(n.capacity()) + heap(v.capacity()))
    }
}

/// A stored span: tracegate's own record, or one that came in through the OTLP intake.
#[derive(Debug, Clone)]
pub(super) enum Stored {
    Own(SpanRecord),
    Foreign(Box<SpanSnapshot>),
}

/// Microseconds since the Unix epoch (0 before it).
pub(super) fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u128::from(u64::MAX)) as u64)
}

/// A record's start and end, in microseconds since the Unix epoch.
pub(super) fn record_times_us(r: &SpanRecord) -> (u64, u64) {
    let start = unix_us(r.start);
    (start, unix_us(r.end).max(start))
}

impl Stored {
    pub(super) fn trace_id(&self) -> TraceId {
        match self {
            Stored::Own(r) => r.trace_id,
            Stored::Foreign(s) => s.trace_id,
        }
    }

    pub(super) fn span_id(&self) -> SpanId {
        match self {
            Stored::Own(r) => r.span_id,
            Stored::Foreign(s) => s.span_id,
        }
    }

    pub(super) fn parent(&self) -> Option<SpanId> {
        match self {
            Stored::Own(r) => r.parent,
            Stored::Foreign(s) => s.parent,
        }
    }

    /// Start and end, in microseconds since the Unix epoch.
    pub(super) fn times_us(&self) -> (u64, u64) {
        match self {
            Stored::Own(r) => record_times_us(r),
            Stored::Foreign(s) => (s.start_us, s.start_us.saturating_add(s.duration_us)),
        }
    }

    pub(super) fn is_error(&self) -> bool {
        match self {
            Stored::Own(r) => r.is_error(),
            Stored::Foreign(s) => s.is_error(),
        }
    }

    /// The service that produced the span.
    pub(super) fn service<'a>(&'a self, own: &'a Process) -> &'a str {
        match self {
            Stored::Own(_) => &own.service,
            Stored::Foreign(s) => &s.process.service,
        }
    }

    /// The span name, as Jaeger's operation.
    pub(super) fn name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Stored::Own(r) => r.name().into(),
            Stored::Foreign(s) => s.name.as_str().into(),
        }
    }

    /// What the span holds, roughly, in bytes: the record and every buffer it owns, each a heap
    /// block of its capacity.
    pub(super) fn bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| heap(s.capacity()));
        match self {
            Stored::Own(r) => {
                let body = match &r.body {
                    SpanBody::Server(s) => {
                        let headers: usize = s
                            .request_headers
                            .iter()
                            .chain(&s.response_headers)
                            .map(|h| {
                                heap(h.key.len())
                                    + heap(h.values.capacity() * size_of::<String>())
                                    + h.values.iter().map(|v| heap(v.capacity())).sum::<usize>()
                            })
                            .sum();
                        heap(size_of_val(&**s))
                            + heap(s.path.capacity())
                            + opt(&s.query)
                            + opt(&s.server_address)
                            + opt(&s.user_agent)
                            + heap(s.request_headers.capacity() * size_of::<CapturedHeader>())
                            + heap(s.response_headers.capacity() * size_of::<CapturedHeader>())
                            + headers
                    }
                    SpanBody::Client(c) => {
                        heap(size_of_val(&**c)) + heap(c.path.capacity()) + opt(&c.error_message)
                    }
                };
                size_of::<Stored>() + body + r.tracestate.as_ref().map_or(0, |t| heap(t.len()))
            }
            Stored::Foreign(s) => size_of::<Stored>() + s.bytes(),
        }
    }

    /// The span as readers see it; tracegate's own spans are reported by `own`.
    pub(super) fn snapshot(&self, own: &Arc<Process>, scratch: &mut AttrScratch) -> SpanSnapshot {
        let r = match self {
            Stored::Foreign(s) => return (**s).clone(),
            Stored::Own(r) => r,
        };
        let mut attributes = Vec::with_capacity(16);
        r.for_each_attribute(scratch, |k, v| {
            let v = match v {
                AttrValue::Str(s) => Value::Str(s.to_owned()),
                AttrValue::Int(i) => Value::Int(i),
                AttrValue::Bool(b) => Value::Bool(b),
                AttrValue::F64(x) => Value::F64(x),
                AttrValue::StrList(l) => Value::Json(serde_json::to_string(l).unwrap_or_default()),
            };
            attributes.push((k.to_owned(), v));
        });
        let mut events = Vec::new();
        r.for_each_event(|e| {
            events.push(Event {
                name: e.name.to_owned(),
                time_us: unix_us(e.time),
                attributes: Vec::new(),
            })
        });
        let status = match r.error_description(scratch) {
            Some(d) => Status::Error(d.to_owned()),
            None => Status::Unset,
        };
        let (start_us, end_us) = self.times_us();
        SpanSnapshot {
            trace_id: r.trace_id,
            span_id: r.span_id,
            parent: r.parent,
            flags: r.flags,
            name: r.name(),
            kind: match r.kind() {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            },
            start_us,
            duration_us: end_us - start_us,
            attributes,
            events,
            links: r
                .link
                .iter()
                .map(|l| Link {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                })
                .collect(),
            status,
            scope: Some((
                crate::trace::export::SCOPE_NAME.to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )),
            process: Arc::clone(own),
        }
    }
}
