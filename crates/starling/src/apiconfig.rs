//! `[api]` of the configuration: where the client API listens and how it is served, and
//! the rule that a non-loopback address needs TLS ([`ApiTransport`]) unless a
//! TLS-terminating proxy is declared. Read with the rest of the file by [`crate::config`].

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// `[api]`: the client API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the client API (relay, REST, status, web client). Loopback by default.
    pub listen: String,
    /// The name in the relay's NIP-11 document.
    pub name: String,
    /// TLS certificate chain (PEM), relative to the data directory unless absolute.
    /// Required, with `tls_key`, when `listen` is not a loopback address.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), relative to the data directory unless absolute.
    pub tls_key: Option<PathBuf>,
    /// Serve plain http/ws (on any address) for a TLS-terminating reverse proxy in front
    /// of the node. Other machines must still authenticate to write.
    pub insecure_plaintext: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7777".into(),
            name: "starling".into(),
            tls_cert: None,
            tls_key: None,
            insecure_plaintext: false,
        }
    }
}

/// How the API is served: decided from `[api]` by [`Settings::api_transport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTransport {
    /// Plain http/ws on a loopback address: only this machine can reach it.
    Loopback,
    /// https/wss with this certificate chain and key (PEM files).
    Tls { cert: PathBuf, key: PathBuf },
    /// Plain http/ws for a TLS-terminating reverse proxy (`insecure_plaintext = true`).
    BehindProxy,
}

impl Settings {
    /// How to serve the API at `api_listen`; `data_dir` anchors relative TLS paths. A
    /// non-loopback address needs TLS or `insecure_plaintext`, or the node refuses to start.
    pub fn api_transport(&self, data_dir: &Path) -> anyhow::Result<ApiTransport> {
        let anchor = |p: &PathBuf| data_dir.join(p);
        match (&self.api_tls, self.api_insecure_plaintext) {
            ((Some(_), None) | (None, Some(_)), _) => {
                bail!("[api] tls_cert and tls_key go together: set both (PEM files) or neither")
            }
            ((Some(_), Some(_)), true) => bail!(
                "[api] insecure_plaintext = true contradicts tls_cert and tls_key: \
                 remove one or the other"
            ),
            ((Some(cert), Some(key)), false) => Ok(ApiTransport::Tls {
                cert: anchor(cert),
                key: anchor(key),
            }),
            ((None, None), true) => Ok(ApiTransport::BehindProxy),
            ((None, None), false) if self.api_listen.ip().is_loopback() => {
                Ok(ApiTransport::Loopback)
            }
            ((None, None), false) => bail!(
                "the API address {addr} is not a loopback address, so other machines could \
                 reach your node: it must serve TLS. Set tls_cert and tls_key (PEM files) \
                 in the [api] section of {config} (`starling tls-cert --host NAME_OR_IP` \
                 makes a self-signed pair), or set insecure_plaintext = true there if a \
                 reverse proxy in front terminates TLS, or listen on 127.0.0.1",
                addr = self.api_listen,
                config = data_dir.join("config.toml").display(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn an_exposed_api_needs_tls_or_an_explicit_proxy_setting() {
        let dir = Path::new("/data");
        let exposed = |api: ApiConfig| {
            Config {
                api,
                ..Config::default()
            }
            .validate(Some("10.0.0.1:7777"))
            .unwrap()
            .api_transport(dir)
        };
        let err = exposed(ApiConfig::default()).unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(
            err.contains("tls_cert") && err.contains("insecure_plaintext"),
            "{err}"
        );
        let with_tls = ApiConfig {
            tls_cert: Some("tls/cert.pem".into()),
            tls_key: Some("/etc/key.pem".into()),
            ..ApiConfig::default()
        };
        assert_eq!(
            exposed(with_tls.clone()).unwrap(),
            ApiTransport::Tls {
                cert: "/data/tls/cert.pem".into(),
                key: "/etc/key.pem".into()
            }
        );
        let proxied = ApiConfig {
            insecure_plaintext: true,
            ..ApiConfig::default()
        };
        assert_eq!(exposed(proxied).unwrap(), ApiTransport::BehindProxy);
        let both = ApiConfig {
            insecure_plaintext: true,
            ..with_tls
        };
        assert!(exposed(both).is_err());
        let half = ApiConfig {
            tls_cert: Some("cert.pem".into()),
            ..ApiConfig::default()
        };
        assert!(exposed(half).unwrap_err().to_string().contains("together"));
        let local = Config::default().validate(None).unwrap();
        assert_eq!(local.api_transport(dir).unwrap(), ApiTransport::Loopback);
    }
}
