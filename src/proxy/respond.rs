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
    // RFC 9110 §8.6, §15.3.5: a 204 (a CORS preflight's answer) or 304 has no content and
    // no Content-Length.
    let no_content = matches!(status, 204 | 304);
    if !no_content {
        resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    }
    for (name, value) in headers {
        if name == http::header::VARY {
            resp.append_header(name, value)?;
        } else {
            resp.insert_header(name, value)?;
        }
    }
    // A refusal by a middleware after `cors` carries the CORS headers too, so that a page can
    // read it (a 429, a 401).
    super::middleware::cors_headers(ctx, &mut resp)?;
    if let Some(route) = ctx.route() {
        apply_response_edits(&route.response_headers, &mut resp)?;
    }
    if let Some(t) = &mut ctx.trace {
        hooks::response(t, &ctx.gateway.tracer, &mut resp)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only || no_content || body.is_empty())
        .await?;
    if !head_only && !no_content && !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
