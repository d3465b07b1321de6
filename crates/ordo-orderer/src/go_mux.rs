//! What Fabric's HTTP APIs (operations, channel participation) inherit from Go's `http.ServeMux`
//! before any handler runs, so that a path trick meets the answer it meets at a Fabric orderer:
//!
//! - a path whose decoded form is not clean (`.` or `..` elements, repeated slashes, however
//!   percent-encoded) is redirected, `301 Moved Permanently`, to its clean form, query kept;
//!   nothing is served under the unclean path;
//! - a path no route serves is `404` with Go's `404 page not found` text.
//!
//! The handlers then see only clean paths; a channel name with a `/` or `..` in it still reaches
//! the participation API's name check, which refuses it.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The bytes Go's `url.URL.EscapedPath` escapes in a path (besides non-ASCII).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The redirect Go's `ServeMux` answers `req` with, if its path is not clean.
pub fn redirect_unclean<B>(req: &Request<B>) -> Option<Response> {
    if req.method() == Method::CONNECT {
        return None;
    }
    let decoded = percent_decode_str(req.uri().path()).decode_utf8().ok()?;
    let clean = clean_path(&decoded);
    if clean == decoded {
        return None;
    }
    let mut location = utf8_percent_encode(&clean, PATH).to_string();
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    Some(moved_permanently(req.method(), &location))
}

/// Go's `http.Redirect` with 301: the location, and for GET and HEAD a short HTML body.
pub fn moved_permanently(method: &Method, location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut r = if method == Method::GET || method == Method::HEAD {
        let body = format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        );
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        Response::new(Body::empty())
    };
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    r.headers_mut().insert(header::LOCATION, value);
    r
}

/// Go's `http.NotFound`.
pub async fn not_found() -> Response {
    let mut r = Response::new(Body::from("404 page not found\n"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Go's `cleanPath` in `net/http`: `path.Clean` of the path rooted at `/`, keeping a trailing
/// slash.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut clean = lexical_clean(&rooted);
    if rooted.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Go's `path.Clean` for a rooted path: no empty or `.` elements, `..` removes the element
/// before it, and none climbs above the root.
fn lexical_clean(rooted: &str) -> String {
    debug_assert!(rooted.starts_with('/'));
    let mut parts: Vec<&str> = Vec::new();
    for part in rooted.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_as_in_go() {
        // Cases from Go's net/http cleanPath and path.Clean tests.
        for (dirty, clean) in [
            ("", "/"),
            ("/", "/"),
            ("abc", "/abc"),
            ("/abc/", "/abc/"),
            ("//abc", "/abc"),
            ("/abc//def//ghi", "/abc/def/ghi"),
            ("/abc/./def", "/abc/def"),
            ("/abc/..", "/"),
            ("/abc/../", "/"),
            ("/abc/def/../ghi/../jkl", "/abc/jkl"),
            ("/../abc", "/abc"),
            ("/..", "/"),
            ("/./", "/"),
            ("/abc/def/..", "/abc"),
            ("/a/b/c/../../../..", "/"),
        ] {
            assert_eq!(clean_path(dirty), clean, "{dirty:?}");
        }
    }

    fn req(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn unclean_paths_are_redirected_encoded_ones_too() {
        let r = redirect_unclean(&req(
            Method::DELETE,
            "/participation/v1/channels/..%2Fchannel-1?x=1",
        ))
        .unwrap();
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.headers()[header::LOCATION],
            "/participation/v1/channel-1?x=1"
        );
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());

        let r = redirect_unclean(&req(Method::GET, "//participation/v1/channels")).unwrap();
        assert_eq!(r.headers()[header::LOCATION], "/participation/v1/channels");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );

        let r = redirect_unclean(&req(Method::GET, "/a/%2e%2e/b%20c/")).unwrap();
        assert_eq!(r.headers()[header::LOCATION], "/b%20c/");

        for clean in [
            "/participation/v1/channels",
            "/participation/v1/",
            "/healthz?x=..",
        ] {
            assert!(
                redirect_unclean(&req(Method::GET, clean)).is_none(),
                "{clean}"
            );
        }
    }
}
