//! The node's configuration file, `config.toml` in the data directory. Stage one of two:
//! this raw form is what serde reads (every field optional, defaulted and documented);
//! [`Config::validate`] turns it into the [`Settings`] that are passed down.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use starling_api::RateConfig;
use starling_proto::Limits;

pub use crate::apiconfig::{ApiConfig, ApiTransport};
use crate::netconfig::NetworkConfig;

/// `config.toml` as written on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub limits: Limits,
    pub rate: RateConfig,
    pub network: NetworkConfig,
}

/// `[store]`: where events are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which database holds the events.
    pub backend: StoreBackend,
    /// The PostgreSQL database (a `postgresql://` URL or a libpq `key=value` string);
    /// required with `backend = "postgres"`, refused otherwise.
    pub postgres_url: String,
    /// Bound on the stored events' bytes; 0 for none.
    pub max_bytes: u64,
    /// Seconds between sweeps that remove expired (NIP-40) events.
    pub expire_every_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            postgres_url: String::new(),
            max_bytes: 2 * 1024 * 1024 * 1024,
            expire_every_secs: 300,
        }
    }
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded SQLite file `events.db` in the data directory.
    Sqlite,
    /// A PostgreSQL server (`store.postgres_url`), for large public nodes.
    Postgres,
}

/// The validated choice of store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `events.db` in the data directory.
    Sqlite,
    /// The PostgreSQL database at this URL.
    Postgres(String),
}

/// Validated settings, passed down explicitly.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_listen: SocketAddr,
    pub name: String,
    pub store: StoreLocation,
    /// `[api]`'s TLS fields, checked against the address by [`Settings::api_transport`].
    pub api_tls: (Option<PathBuf>, Option<PathBuf>),
    pub api_insecure_plaintext: bool,
    pub max_bytes: Option<u64>,
    pub expire_every_secs: u64,
    pub limits: Limits,
    pub rate: RateConfig,
    pub network: NetworkConfig,
}

impl StoreConfig {
    /// Checks `backend` against `postgres_url` and what this binary was built with.
    fn location(&self) -> anyhow::Result<StoreLocation> {
        let url = self.postgres_url.trim();
        match self.backend {
            StoreBackend::Sqlite if !url.is_empty() => bail!(
                "store: postgres_url is set but backend is \"sqlite\"; set backend = \"postgres\" to use it, or remove postgres_url"
            ),
            StoreBackend::Sqlite => Ok(StoreLocation::Sqlite),
            StoreBackend::Postgres if url.is_empty() => {
                bail!("store: backend = \"postgres\" needs postgres_url (for example \"postgresql://starling@localhost/starling\")")
            }
            StoreBackend::Postgres if !cfg!(feature = "postgres") => bail!(
                "store: backend = \"postgres\" but this starling was built without PostgreSQL support (cargo feature `postgres`)"
            ),
            StoreBackend::Postgres => Ok(StoreLocation::Postgres(url.to_string())),
        }
    }
}

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid starling config", path.display()))
    }

    /// Checks the values and produces settings; `api_override` replaces `api.listen`.
    pub fn validate(self, api_override: Option<&str>) -> anyhow::Result<Settings> {
        let listen = api_override.unwrap_or(&self.api.listen);
        let api_listen: SocketAddr = listen
            .parse()
            .with_context(|| format!("api address {listen:?} is not IP:PORT"))?;
        let l = &self.limits;
        if l.max_event_bytes == 0
            || l.max_filters == 0
            || l.max_subscriptions == 0
            || l.max_limit == 0
        {
            bail!("limits: max_event_bytes, max_filters, max_subscriptions and max_limit must be positive");
        }
        if l.max_message_bytes < l.max_event_bytes {
            bail!("limits: max_message_bytes must be at least max_event_bytes");
        }
        let r = &self.rate;
        if r.max_connections == 0 || r.max_connections_per_ip == 0 || r.max_pending_bytes == 0 {
            bail!("rate: max_connections, max_connections_per_ip and max_pending_bytes must be positive");
        }
        let store = self.store.location()?;
        Ok(Settings {
            api_listen,
            name: self.api.name,
            store,
            api_tls: (self.api.tls_cert, self.api.tls_key),
            api_insecure_plaintext: self.api.insecure_plaintext,
            max_bytes: (self.store.max_bytes > 0).then_some(self.store.max_bytes),
            expire_every_secs: self.store.expire_every_secs.max(1),
            limits: self.limits,
            rate: self.rate,
            network: self.network,
        })
    }

    /// The commented config file `starling init` writes, showing every default.
    ///
    /// (Its `[api]` TLS lines are comments: a loopback API needs none.)
    pub fn template(api_listen: &str) -> String {
        let d = Self::default();
        let l = &d.limits;
        let r = &d.rate;
        let rate =
            |r: starling_core::Rate| format!("{{ per_sec = {}, burst = {} }}", r.per_sec, r.burst);
        format!(
            r#"# starling node configuration. Every field is optional: a missing one takes the
# default shown here. Sizes are in bytes, durations in seconds.

[api]
# Address of the client API: the NIP-01 relay (ws://), NostrP2P's REST routes
# (POST /publish, POST /req), GET /api/status and the web client (http://ADDR/).
# Keep it on loopback (127.0.0.1) unless you mean to expose your node to other
# machines. Exposed, the node serves https:// and wss:// (see tls_cert below), and
# other machines must prove they are you: log in to the web client and the status
# routes with the token in web.token (or a NIP-07 signer holding your key),
# authenticate (NIP-42) as you before the relay takes their events, and send the token
# as `Authorization: Bearer TOKEN` to POST /publish. Public reads stay open to anyone.
listen = "{api_listen}"
# The relay's name in its NIP-11 information document.
name = "{name}"
# TLS certificate chain and private key (PEM files; relative paths are taken from the
# data directory). Required when listen is not a loopback address.
# `starling tls-cert --host NAME_OR_IP` writes a self-signed pair to tls/cert.pem and
# tls/key.pem and prints its fingerprint; a certificate from a public CA (e.g. Let's
# Encrypt) works with every client without further steps.
# tls_cert = "tls/cert.pem"
# tls_key = "tls/key.pem"
# Behind a reverse proxy that terminates TLS: serve plain http:// and ws:// (on any
# address, loopback included) and hold the proxy's clients to the rules above. The
# proxy must pass the Host header or add X-Forwarded-For, so that the node can tell
# its requests from this machine's own.
insecure_plaintext = false

[store]
# Where events are kept: "sqlite" (the file events.db in the data directory) or
# "postgres" (a PostgreSQL server, for large public nodes; the database must exist and
# the user may create tables in it, and starling creates its schema on first start).
backend = "sqlite"
# With backend = "postgres": the database, as a URL or a libpq key=value string; a
# unix socket directory goes in host, e.g. "host=/run/postgresql dbname=starling".
# postgres_url = "postgresql://starling:PASSWORD@127.0.0.1/starling"
# Upper bound on the stored events' size (their JSON). Past it the oldest events of
# other authors are pruned; the owner's own events are never pruned. 0 = no bound.
# The database file is larger than this by its indexes (about 2x).
max_bytes = {max_bytes}
# How often expired events (NIP-40) are removed.
expire_every_secs = {expire}

[limits]
# Largest accepted event (its JSON).
max_event_bytes = {max_event_bytes}
# Most tags per event, and most elements per tag.
max_tags = {max_tags}
max_tag_elements = {max_tag_elements}
# Largest client message (one WebSocket frame).
max_message_bytes = {max_message_bytes}
# Most filters per REQ/COUNT, open subscriptions per connection, characters per
# subscription id, and values per filter field.
max_filters = {max_filters}
max_subscriptions = {max_subscriptions}
max_subid_chars = {max_subid_chars}
max_filter_values = {max_filter_values}
# Most stored events returned for one filter (a larger `limit` is lowered to it).
max_limit = {max_limit}
# How far in the future an event's created_at may be.
max_future_secs = {max_future_secs}
# How far in the past created_at may be; leave unset to accept any age (needed for
# imports and catching up with the network).
# max_past_secs = 31536000

[rate]
# Rate limits for clients, as token buckets: `per_sec` tokens come back each second, up
# to `burst`; an EVENT costs 1 token (a refused one costs `refused_event_cost`), a REQ,
# COUNT or NEG-OPEN costs 1 of the request buckets. Over a limit, EVENTs get
# `OK false "rate-limited: ..."` and REQs `CLOSED "rate-limited: ..."` (HTTP 429 on the
# REST routes). `per_sec = 0` turns a bucket off.
# Clients on loopback (this machine: the owner's own) skip the buckets, not the caps.
exempt_loopback = {exempt_loopback}
# Most WebSocket connections at once, and from one IP address (exempt loopback
# clients are not counted per IP).
max_connections = {max_connections}
max_connections_per_ip = {max_connections_per_ip}
# Most bytes of EVENTs one connection may have waiting to be stored; past it the node
# reads nothing more from that connection until they are stored.
max_pending_bytes = {max_pending_bytes}
refused_event_cost = {refused_event_cost}
# Per connection.
connection_events = {connection_events}
connection_reqs = {connection_reqs}
# Per IP address, over all its connections and the REST routes.
ip_events = {ip_events}
ip_reqs = {ip_reqs}
# Per author of the EVENTs.
pubkey_events = {pubkey_events}
"#,
            name = d.api.name,
            max_bytes = d.store.max_bytes,
            expire = d.store.expire_every_secs,
            max_event_bytes = l.max_event_bytes,
            max_tags = l.max_tags,
            max_tag_elements = l.max_tag_elements,
            max_message_bytes = l.max_message_bytes,
            max_filters = l.max_filters,
            max_subscriptions = l.max_subscriptions,
            max_subid_chars = l.max_subid_chars,
            max_filter_values = l.max_filter_values,
            max_limit = l.max_limit,
            max_future_secs = l.max_future_secs,
            exempt_loopback = r.exempt_loopback,
            max_connections = r.max_connections,
            max_connections_per_ip = r.max_connections_per_ip,
            max_pending_bytes = r.max_pending_bytes,
            refused_event_cost = r.refused_event_cost,
            connection_events = rate(r.connection_events),
            connection_reqs = rate(r.connection_reqs),
            ip_events = rate(r.ip_events),
            ip_reqs = rate(r.ip_reqs),
            pubkey_events = rate(r.pubkey_events),
        ) + &NetworkConfig::template()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_the_defaults() {
        let parsed: Config = toml::from_str(&Config::template("127.0.0.1:7777")).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn an_empty_file_is_all_defaults_and_typos_are_refused() {
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("[api]\nlisten_addr = \"x\"").is_err());
        let settings = Config::default().validate(Some("127.0.0.1:0")).unwrap();
        assert_eq!(settings.api_listen.port(), 0);
        assert!(Config::default().validate(Some("nowhere")).is_err());
    }

    #[test]
    fn the_store_is_sqlite_unless_postgres_is_configured_in_full() {
        let settings = Config::default().validate(None).unwrap();
        assert_eq!(settings.store, StoreLocation::Sqlite);
        let parse = |text: &str| toml::from_str::<Config>(text).unwrap().validate(None);
        let half = parse("[store]\nbackend = \"postgres\"").unwrap_err();
        assert!(half.to_string().contains("postgres_url"), "{half}");
        let stray = parse("[store]\npostgres_url = \"host=/tmp\"").unwrap_err();
        assert!(stray.to_string().contains("backend"), "{stray}");
        assert!(toml::from_str::<Config>("[store]\nbackend = \"mysql\"").is_err());
        let full = parse("[store]\nbackend = \"postgres\"\npostgres_url = \"host=/tmp\"");
        if cfg!(feature = "postgres") {
            let url = "host=/tmp".to_string();
            assert_eq!(full.unwrap().store, StoreLocation::Postgres(url));
        } else {
            assert!(full.unwrap_err().to_string().contains("built without"));
        }
    }

    #[test]
    fn the_api_stays_on_loopback_unless_configured_otherwise() {
        let settings = Config::default().validate(None).unwrap();
        assert!(settings.api_listen.ip().is_loopback());
        let parsed: Config = toml::from_str(&Config::template("127.0.0.1:7777")).unwrap();
        assert!(parsed.validate(None).unwrap().api_listen.ip().is_loopback());
    }
}
