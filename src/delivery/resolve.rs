#![warn(missing_docs)]
//! Host name lookups, for the target guard at registration and at every connect.
//!
//! The lookup is a [`DnsResolver`] that an embedding application (or a test) can replace,
//! so that tests never ask a real DNS server and a resolver that never answers can be made.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::domain::target::{is_blocked, is_local_name};
use crate::domain::WebhookUrl;

/// Looks a host name up; the answer is every address it has.
pub trait DnsResolver: Send + Sync + 'static {
    /// The addresses of `host`, each with `port`.
    fn lookup(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` on a blocking thread).
struct SystemResolver;

impl DnsResolver for SystemResolver {
    fn lookup(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

/// The resolver hookbus uses: the system's unless [`Resolver::new`] gave another.
#[derive(Clone)]
pub struct Resolver(Arc<dyn DnsResolver>);

impl Resolver {
    /// Looks names up with `resolver`.
    pub fn new(resolver: impl DnsResolver) -> Self {
        Self(Arc::new(resolver))
    }

    /// The addresses of `host`, each with `port`.
    pub fn lookup(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        self.0.lookup(host, port)
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new(SystemResolver)
    }
}

impl PartialEq for Resolver {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// What the guard decided for a host.
#[derive(Debug, PartialEq, Eq)]
pub enum Addresses {
    /// An IP literal: connect to it, no lookup.
    Literal(SocketAddr),
    /// A name: look it up, then keep only public addresses.
    Lookup,
    /// Internal: never connect.
    Blocked,
}

/// An IP literal as the HTTP client hands hosts over (IPv6 in brackets), if `host` is one.
fn ip_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// The connect-time guard's first step: literals are judged here (a public IPv6 literal
/// must not be sent to a name lookup, which cannot answer for `[2606:…]`).
pub fn guard_host(host: &str, port: u16) -> Addresses {
    match ip_literal(host) {
        Some(ip) if is_blocked(ip) => Addresses::Blocked,
        Some(ip) => Addresses::Literal(SocketAddr::new(ip, port)),
        None if is_local_name(host) => Addresses::Blocked,
        None => Addresses::Lookup,
    }
}

/// The connect-time guard's second step: only public addresses of a name are connected
/// to; `None` when the name has addresses and all are internal.
pub fn public_addresses(resolved: Vec<SocketAddr>) -> Option<Vec<SocketAddr>> {
    let any = !resolved.is_empty();
    let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| !is_blocked(a.ip())).collect();
    if public.is_empty() && any {
        None
    } else {
        Some(public)
    }
}

/// True if `url`'s host resolves to an internal address within `deadline`. A host that does
/// not resolve, or not in time, passes here: the connect-time guard checks every connection.
pub async fn resolves_to_internal(resolver: &Resolver, url: &WebhookUrl, deadline: Duration) -> bool {
    let (host, port) = url.host_and_port();
    if ip_literal(&host).is_some() {
        // Judged when the URL was parsed.
        return false;
    }
    match actix_rt::time::timeout(deadline, resolver.lookup(host.clone(), port)).await {
        Ok(Ok(addresses)) => addresses.iter().any(|a| is_blocked(a.ip())),
        Ok(Err(_)) => false,
        Err(_) => {
            log::info!("the lookup of {host} took longer than {deadline:?}; it is checked again at every connect");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ipv6_literals_are_connected_to_without_a_lookup() {
        let public = "[2606:4700:4700::1111]";
        assert_eq!(guard_host(public, 443), Addresses::Literal("[2606:4700:4700::1111]:443".parse().unwrap()));
        assert_eq!(guard_host("8.8.8.8", 8443), Addresses::Literal("8.8.8.8:8443".parse().unwrap()));
    }

    #[test]
    fn internal_literals_and_local_names_are_blocked_and_names_are_looked_up() {
        for host in ["[::1]", "[::ffff:0:7f00:1]", "[2001::1]", "[100::1]", "127.0.0.1", "192.88.99.1", "localhost"] {
            assert_eq!(guard_host(host, 443), Addresses::Blocked, "{host}");
        }
        assert_eq!(guard_host("example.com", 443), Addresses::Lookup);
    }

    #[test]
    fn only_public_answers_are_kept() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let internal: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(public_addresses(vec![internal, public]), Some(vec![public]));
        assert_eq!(public_addresses(vec![internal]), None);
        assert_eq!(public_addresses(vec![]), Some(vec![]));
    }
}
