//! The providers page: plain HTML, JavaScript and CSS embedded in the
//! binary (no front-end toolchain). The page asks for a token (kept in
//! `sessionStorage`) and a scope, then reads the API like any client.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const PAGE_JS: &str = include_str!("assets/page.js");
/// Its style sheet.
pub const PAGE_CSS: &str = include_str!("assets/page.css");

/// The page's content security policy: its own files and API only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`.
#[utoipa::path(
    get,
    path = "/",
    tag = "page",
    operation_id = "page",
    summary = "The providers page",
    description = "HTML; it asks for a token and a scope and reads the API.",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html",
        example = json!("<!doctype html>\n<html lang=\"en\">…</html>"))),
)]
pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /assets/page.js`.
#[utoipa::path(
    get,
    path = "/assets/page.js",
    tag = "page",
    operation_id = "pageScript",
    summary = "The page's script",
    description = "JavaScript.",
    responses((status = 200, description = "The script.", body = String, content_type = "text/javascript",
        example = json!("// The providers page. …"))),
)]
pub async fn script() -> Response {
    asset(PAGE_JS, "text/javascript; charset=utf-8")
}

/// `GET /assets/page.css`.
#[utoipa::path(
    get,
    path = "/assets/page.css",
    tag = "page",
    operation_id = "pageStyle",
    summary = "The page's style sheet",
    description = "CSS.",
    responses((status = 200, description = "The style sheet.", body = String, content_type = "text/css",
        example = json!(":root { … }"))),
)]
pub async fn style() -> Response {
    asset(PAGE_CSS, "text/css; charset=utf-8")
}
