//! The console's files, embedded in the binary at build time from
//! `functions/console/assets/`. A plain table of `include_bytes!` rather than
//! a crate such as `include_dir`: a dozen files, no dependency to audit, and
//! a unit test keeps the table and the folder equal.

pub struct Asset {
    /// Its path under `/console/`.
    pub path: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

/// The page first: `GET /console` is `index.html`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html"),
    asset!("console.css"),
    asset!("icon.svg"),
    asset!("app.js"),
    asset!("api.js"),
    asset!("dom.js"),
    asset!("format.js"),
    asset!("geofence.js"),
    asset!("screens/review.js"),
    asset!("screens/escrow.js"),
    asset!("screens/payouts.js"),
    asset!("screens/alerts.js"),
    asset!("screens/psp.js"),
    asset!("screens/audit.js"),
];

/// The `Content-Type` of a file, by its extension; `None` for a kind the
/// console does not serve.
pub fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

pub fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}
