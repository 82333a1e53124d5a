//! The web client's files (`crates/api/web/`), built into the binary with `include_bytes!`:
//! nothing is fetched from anywhere else. Each is gzip-compressed once when the node starts
//! and served compressed to browsers that accept it.
//!
//! Caching: the files live under `/app/VERSION/NAME`, where VERSION is a digest of all of
//! them, so they are cached for good (`immutable`); the two pages that name them (the
//! client and the login page) are revalidated on every load (`no-cache` with an `ETag`).

use std::io::Write;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// The placeholder in the pages that becomes the assets' version.
const VERSION_MARK: &str = "{{version}}";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The files under `/app/VERSION/`: name, content type, whether the login page needs it
/// (and so it is served without login), and the bytes.
const FILES: &[(&str, &str, bool, &[u8])] = &[
    ("app.js", JS, false, include_bytes!("../../web/app.js")),
    ("nostr.js", JS, false, include_bytes!("../../web/nostr.js")),
    ("relay.js", JS, false, include_bytes!("../../web/relay.js")),
    ("model.js", JS, false, include_bytes!("../../web/model.js")),
    ("dom.js", JS, false, include_bytes!("../../web/dom.js")),
    ("notes.js", JS, false, include_bytes!("../../web/notes.js")),
    ("views.js", JS, false, include_bytes!("../../web/views.js")),
    (
        "people.js",
        JS,
        false,
        include_bytes!("../../web/people.js"),
    ),
    (
        "network.js",
        JS,
        false,
        include_bytes!("../../web/network.js"),
    ),
    (
        "messages.js",
        JS,
        false,
        include_bytes!("../../web/messages.js"),
    ),
    ("login.js", JS, true, include_bytes!("../../web/login.js")),
    (
        "style.css",
        CSS,
        true,
        include_bytes!("../../web/style.css"),
    ),
    ("icon.svg", SVG, true, include_bytes!("../../web/icon.svg")),
];
const INDEX: &str = include_str!("../../web/index.html");
const LOGIN: &str = include_str!("../../web/login.html");

/// The Content-Security-Policy of the pages: only the node's own scripts, styles and
/// connections; pictures from anywhere (profile pictures are URLs their owners chose).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' https: http: data:; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// One servable file.
pub struct File {
    pub content_type: &'static str,
    /// Whether it is served without login.
    pub open: bool,
    body: Bytes,
    gzip: Bytes,
}

impl File {
    fn new(content_type: &'static str, open: bool, body: Vec<u8>) -> Self {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder
            .write_all(&body)
            .expect("gzip into memory cannot fail");
        let gzip = encoder.finish().expect("gzip into memory cannot fail");
        Self {
            content_type,
            open,
            body: body.into(),
            gzip: gzip.into(),
        }
    }
}

/// How a response may be cached.
#[derive(Debug, Clone, Copy)]
pub enum Caching {
    /// A versioned asset: forever.
    Immutable,
    /// A page: revalidated on each load against the version.
    Revalidate,
}

/// All of the web client's files.
pub struct Assets {
    version: String,
    files: Vec<(&'static str, File)>,
    pub index: File,
    pub login: File,
}

impl Default for Assets {
    fn default() -> Self {
        Self::new()
    }
}

impl Assets {
    /// Compresses every file and stamps the pages with the version.
    pub fn new() -> Self {
        let mut hash = Sha256::new();
        for (name, _, _, bytes) in FILES {
            hash.update(name.as_bytes());
            hash.update(bytes);
        }
        hash.update(INDEX.as_bytes());
        hash.update(LOGIN.as_bytes());
        let version = hex::encode(&hash.finalize()[..6]);
        let page = |html: &str, open| {
            File::new(
                HTML,
                open,
                html.replace(VERSION_MARK, &version).into_bytes(),
            )
        };
        Self {
            index: page(INDEX, false),
            login: page(LOGIN, true),
            files: FILES
                .iter()
                .map(|(name, content_type, open, bytes)| {
                    (*name, File::new(content_type, *open, bytes.to_vec()))
                })
                .collect(),
            version,
        }
    }

    /// The digest naming this set of files.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file `name` of version `version`.
    pub fn file(&self, version: &str, name: &str) -> Option<&File> {
        if version != self.version {
            return None;
        }
        self.files.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// Answers a GET for `file` (with `status`), compressed when the client accepts gzip.
    pub fn respond(
        &self,
        file: &File,
        status: StatusCode,
        caching: Caching,
        request: &HeaderMap,
    ) -> Response {
        let etag = format!("\"{}\"", self.version);
        let cache_control = match caching {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        headers.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if file.content_type == HTML {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        }
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        if fresh && status == StatusCode::OK {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        if accepts_gzip(request) {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (status, headers, file.gzip.clone()).into_response()
        } else {
            (status, headers, file.body.clone()).into_response()
        }
    }
}

/// Whether `Accept-Encoding` lists gzip (without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused =
                parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_versioned_and_compressed() {
        let assets = Assets::new();
        let v = assets.version().to_string();
        assert_eq!(v.len(), 12);
        let app = assets.file(&v, "app.js").expect("app.js");
        assert!(app.gzip.len() < app.body.len());
        assert!(assets.file("000000000000", "app.js").is_none());
        assert!(assets.file(&v, "../Cargo.toml").is_none());
        let index = String::from_utf8(assets.index.body.to_vec()).unwrap();
        assert!(index.contains(&format!("/app/{v}/app.js")), "{index}");
        assert!(!index.contains(VERSION_MARK));
    }

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
    }
}
