//! `starling tls-cert`: a self-signed certificate for an exposed API, so a node can serve
//! https/wss at once. Writes `tls/cert.pem` and `tls/key.pem` (mode 0600) in the data
//! directory and prints the certificate's SHA-256 fingerprint and the `[api]` lines that
//! use it. Clients trust it by importing `tls/cert.pem` (or by comparing the fingerprint
//! the first time); a certificate from a public CA needs no such step.
//!
//! The key is ECDSA P-256; the certificate names every `--host` (DNS names and IP
//! addresses alike) and is valid for [`VALID_DAYS`] days, the longest Apple's systems
//! accept for a TLS server certificate.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{CertificateParams, DnType, KeyPair};
use time::{Duration, OffsetDateTime};

use crate::args::TlsCertArgs;
use crate::datadir::DataDir;

/// How long the certificate is valid.
pub const VALID_DAYS: i64 = 825;

/// The files a certificate was written to.
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: String,
}

pub fn run(args: TlsCertArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir)?;
    let written = write(dir.path(), &args.host, args.force)?;
    println!(
        "wrote a self-signed certificate for {}",
        args.host.join(", ")
    );
    println!("  cert         {}", written.cert.display());
    println!("  key          {}", written.key.display());
    println!("  sha256       {}", written.fingerprint);
    println!("  valid until  {VALID_DAYS} days from now");
    println!("Use it: in the [api] section of {}", dir.config().display());
    println!("  tls_cert = \"tls/cert.pem\"\n  tls_key = \"tls/key.pem\"");
    println!(
        "Clients must trust it: import tls/cert.pem into the device or browser, and check \
         that the fingerprint it shows is the one above."
    );
    Ok(())
}

/// Makes the certificate and writes it under `data_dir/tls/`.
pub fn write(data_dir: &Path, hosts: &[String], force: bool) -> anyhow::Result<Written> {
    if hosts.is_empty() {
        bail!("name at least one --host: the name or IP address clients will connect to");
    }
    if let Some(bad) = hosts.iter().find(|h| !is_host(h)) {
        bail!("--host {bad:?} is neither an IP address nor a DNS name");
    }
    let tls_dir = data_dir.join("tls");
    let (cert_path, key_path) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    if !force && (cert_path.exists() || key_path.exists()) {
        bail!(
            "{} already holds a certificate or key; pass --force to replace them",
            tls_dir.display()
        );
    }
    let mut params =
        CertificateParams::new(hosts.to_vec()).context("a --host cannot go in a certificate")?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("starling node {}", hosts[0]));
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALID_DAYS);
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    std::fs::create_dir_all(&tls_dir)
        .with_context(|| format!("cannot create {}", tls_dir.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
        fingerprint: starling_api::tls::fingerprint(cert.der()),
    })
}

/// Whether `host` is an IP address or a DNS name (labels of letters, digits and `-`; a
/// leading `*.` for a wildcard).
fn is_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_pair_loads_and_is_not_overwritten_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["10.1.2.3".to_string(), "node.example".to_string()];
        let written = write(dir.path(), &hosts, false).unwrap();
        let tls = starling_api::tls::TlsSettings::load(&written.cert, &written.key).unwrap();
        assert_eq!(tls.fingerprint(), written.fingerprint);
        assert_eq!(written.fingerprint.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&written.key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write(dir.path(), &hosts, false).is_err());
        let again = write(dir.path(), &hosts, true).unwrap();
        assert_ne!(again.fingerprint, written.fingerprint);
        assert!(write(dir.path(), &[], true).is_err());
        assert!(write(dir.path(), &["bad name!".to_string()], true).is_err());
    }

    #[test]
    fn hosts_are_ips_or_dns_names() {
        for good in [
            "10.0.0.1",
            "::1",
            "localhost",
            "node.example",
            "*.example.org",
            "a-b.c",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in ["", "bad name!", "-a.example", "a..b", "*.", "a_b.example"] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
