//! Who may use the admin API, decided from a request's headers alone (pure, so it is tested
//! without a network):
//! - a `Host` other than the listen address or `localhost` is refused, so a DNS-rebinding page
//!   cannot read the API under its own host name;
//! - an `Origin` other than the API's own (`http://<Host>`) is refused, so no other web page can
//!   send it requests from the operator's browser;
//! - mutating routes always need the bearer token: `daemon.admin_token`, or the one the daemon
//!   generated in `<state_dir>/admin-token` (mode 0600) when the config sets none;
//! - read-only routes need the token only when the config sets one (without one the daemon
//!   listens on loopback only).

use std::net::{IpAddr, SocketAddr};

use hubspot_model::Secret;

/// The admin API's access rules.
#[derive(Debug, Clone)]
pub struct Access {
    listen: SocketAddr,
    token: Secret,
    /// The token comes from the config (so reads need it too), not from the generated file.
    configured: bool,
}

impl Access {
    pub fn new(listen: SocketAddr, token: Secret, configured: bool) -> Access {
        Access { listen, token, configured }
    }

    /// Whether read-only routes (`/syncs`, `/metrics`) need the token as well.
    pub fn reads_need_token(&self) -> bool {
        self.configured
    }

    /// Whether a `Host` header names this API: `localhost`, or the IP address it listens on
    /// (any IP address when it listens on all of them). The port is not compared, so a port
    /// mapping (a container's `-p 9000:8484`) still works. No header (HTTP/1.0) is accepted: a
    /// browser always sends one.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let Some(name) = host_name(host) else { return false };
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => ip == self.listen.ip() || self.listen.ip().is_unspecified(),
            Err(_) => false,
        }
    }

    /// Whether an `Origin` header is the API's own: `http://` plus the request's `Host`. No
    /// header is accepted (curl, `hubsync trigger`); `null` and every other origin are not.
    pub fn origin_allowed(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let Some(host) = host else { return false };
        origin.strip_prefix("http://").is_some_and(|rest| rest.trim_end_matches('/').eq_ignore_ascii_case(host))
    }

    /// Whether an `Authorization` header carries the token.
    pub fn token_matches(&self, authorization: Option<&str>) -> bool {
        let given = authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        given.is_some_and(|g| same(g.as_bytes(), self.token.expose().as_bytes()))
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]` or `[v6]:port`).
fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    if host.starts_with('[') {
        let end = host.find(']')?;
        return Some(&host[..=end]);
    }
    Some(host.rsplit_once(':').map_or(host, |(name, _)| name))
}

/// Compares in constant time, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(listen: &str) -> Access {
        Access::new(listen.parse().unwrap(), Secret::new("s3cret"), false)
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        let a = access("127.0.0.1:8484");
        assert!(a.token_matches(Some("Bearer s3cret")));
        assert!(!a.token_matches(Some("Bearer s3cre")));
        assert!(!a.token_matches(Some("s3cret")));
        assert!(!a.token_matches(None));
    }

    #[test]
    fn hosts_are_the_listen_address_or_localhost() {
        let a = access("127.0.0.1:8484");
        for ok in ["127.0.0.1:8484", "127.0.0.1", "localhost:8484", "LOCALHOST", "127.0.0.1:9000"] {
            assert!(a.host_allowed(Some(ok)), "{ok}");
        }
        assert!(a.host_allowed(None));
        for bad in ["evil.example:8484", "127.0.0.2:8484", "10.0.0.1:8484", "localhost.evil.example", "", "[::1]:8484"]
        {
            assert!(!a.host_allowed(Some(bad)), "{bad}");
        }
        let v6 = access("[::1]:8484");
        assert!(v6.host_allowed(Some("[::1]:8484")) && !v6.host_allowed(Some("127.0.0.1:8484")));
        let all = access("0.0.0.0:8484");
        assert!(all.host_allowed(Some("192.0.2.7:8484")) && !all.host_allowed(Some("rebind.evil.example:8484")));
    }

    #[test]
    fn origins_must_be_the_api_itself() {
        let a = access("127.0.0.1:8484");
        let host = Some("127.0.0.1:8484");
        assert!(a.origin_allowed(None, host));
        assert!(a.origin_allowed(Some("http://127.0.0.1:8484"), host));
        for bad in ["https://evil.example", "null", "http://127.0.0.1:3000", "http://localhost:8484"] {
            assert!(!a.origin_allowed(Some(bad), host), "{bad}");
        }
    }
}
