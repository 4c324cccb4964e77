//! The one writer of the proxy's own answers ([`Answer`]): a `respond` or `redirect` route, a
//! listener's HTTPS redirect, 404, 400, and 502/504 for a failed upstream.

use super::apply::apply_response_edits;
use super::RequestCtx;
use crate::routing::Answer;
use crate::trace::hooks;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Writes `answer` as a complete response: a plain-text body with its length, the answer's
/// headers, the matched route's `response_headers` edits (nginx `add_header … always`) and the
/// trace response headers. A `HEAD` request gets the head alone.
pub(super) async fn write(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: Answer,
) -> Result<()> {
    let Answer {
        status,
        body,
        headers,
    } = answer;
    let mut resp = ResponseHeader::build(status, Some(3 + headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    for (name, value) in headers {
        resp.insert_header(name, value)?;
    }
    if let Some(route) = ctx.route() {
        apply_response_edits(&route.response_headers, &mut resp)?;
    }
    if let Some(t) = &mut ctx.trace {
        hooks::response(t, &ctx.gateway.tracer, &mut resp)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || body.is_empty())
        .await?;
    if !head_only && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
