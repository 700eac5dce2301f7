//! `GET /`: the dashboard, one page with its script and style sheet, compiled into the Worker.
//!
//! The page is static: it holds no data and no token. Its script asks for the admin token,
//! keeps it in sessionStorage, and reads and changes everything through the admin API with
//! `Authorization: Bearer`, like any other client; the API keeps ignoring cookies and answers
//! no CORS preflight. The script and style are files of their own so that the Content-Security-
//! Policy can forbid every inline script and style; the script builds the page with
//! `textContent`/`createElement` only, which the policy's Trusted Types clause enforces.

/// The dashboard's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Style,
}

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Only this origin's own files, no inline code, no plugins, no framing, no `<base>`, no form
/// submissions (the token field must never end up in a URL), and no string-to-HTML sinks.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'";

impl Asset {
    pub fn body(self) -> &'static str {
        match self {
            Asset::Page => PAGE,
            Asset::Script => SCRIPT,
            Asset::Style => STYLE,
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Asset::Page => "text/html; charset=utf-8",
            Asset::Script => "text/javascript; charset=utf-8",
            Asset::Style => "text/css; charset=utf-8",
        }
    }
}

/// The headers of each file: its type, the policy, and no sniffing, framing, referrers or caching
/// across deployments.
pub fn headers(asset: Asset) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", asset.content_type().to_string()),
        ("content-security-policy", CONTENT_SECURITY_POLICY.to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("x-frame-options", "DENY".to_string()),
        ("referrer-policy", "no-referrer".to_string()),
        ("cross-origin-opener-policy", "same-origin".to_string()),
        ("cache-control", "no-cache".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_has_no_inline_code() {
        assert!(PAGE.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="/dashboard.css">"#));
        assert_eq!(PAGE.matches("<script").count(), 1, "one script tag, no inline script");
        let lower = PAGE.to_ascii_lowercase();
        for banned in ["<style", " style=", "javascript:", "http://", "https://"] {
            assert!(!lower.contains(banned), "{banned:?} in the page");
        }
        // No event handler attributes (` onclick=` and the like).
        let handler = lower.match_indices(" on").any(|(i, _)| {
            let rest = &lower[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "an inline event handler in the page");
        // The SVG namespace is a name, not an address the page loads.
        let script = SCRIPT.replace("\"http://www.w3.org/2000/svg\"", "");
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"] {
            assert!(!script.contains(banned), "{banned} in the script");
        }
        assert!(!STYLE.contains("url("), "the style sheet loads nothing");
        assert!(PAGE.contains(r#"<label for="token">Admin token</label>"#));
        assert!(PAGE.contains(r#"type="password""#));
    }

    #[test]
    fn every_file_carries_the_policy_and_its_type() {
        for a in [Asset::Page, Asset::Script, Asset::Style] {
            let h = headers(a);
            let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
            assert_eq!(get("content-security-policy"), Some(CONTENT_SECURITY_POLICY));
            assert_eq!(get("x-content-type-options"), Some("nosniff"));
            assert!(get("content-type").is_some());
        }
        for d in ["default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"] {
            assert!(CONTENT_SECURITY_POLICY.contains(d), "{d}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"), "nothing unsafe");
    }
}
