//! The node's data directory: where it is, what it holds, and creating it.
//!
//! ```text
//! DIR/config.toml   the configuration (see config.rs)
//! DIR/node.key      the node's libp2p key (protobuf-encoded ed25519), mode 0600
//! DIR/owner.nsec    the owner's secret key, mode 0600; or, for a node that holds
//! DIR/owner.npub    only the owner's public key, that key
//! DIR/events.db     the event store (SQLite, WAL)
//! DIR/outbox.db     the network's durable tables: outbox, followers, held authors (SQLite)
//! DIR/web.token     the web client's login token for other devices, mode 0600
//!                   (created on first run; delete it and restart for a new one)
//! DIR/api.addr      the running node's API address (present while it runs; a node
//!                   that cannot write it, on a full disk, logs that and runs on)
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use starling_proto::{FromBech32, Keys, PublicKey, SecretKey, ToBech32};

use crate::config::Config;

/// The owner's identity as the data directory holds it.
pub enum OwnerKey {
    /// The node can sign for the owner.
    Secret(Keys),
    /// The node only knows the owner's public key.
    Public(PublicKey),
}

impl OwnerKey {
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Secret(keys) => keys.public_key(),
            Self::Public(pk) => *pk,
        }
    }
}

/// A data directory.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// `dir`, or the platform's default (`~/.local/share/starling` on Linux).
    pub fn resolve(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        match dir {
            Some(dir) => Ok(Self(dir)),
            None => {
                let base =
                    dirs::data_dir().context("no platform data directory; pass --data-dir")?;
                Ok(Self(base.join("starling")))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    pub fn events_db(&self) -> PathBuf {
        self.0.join("events.db")
    }
    pub fn api_addr(&self) -> PathBuf {
        self.0.join("api.addr")
    }
    fn node_key(&self) -> PathBuf {
        self.0.join("node.key")
    }
    fn nsec(&self) -> PathBuf {
        self.0.join("owner.nsec")
    }
    fn npub(&self) -> PathBuf {
        self.0.join("owner.npub")
    }
    pub fn web_token_path(&self) -> PathBuf {
        self.0.join("web.token")
    }

    /// Whether `init` has run here.
    pub fn is_initialized(&self) -> bool {
        self.config().exists()
    }

    /// Creates the data directory for `owner` (a new key when `None`). Refuses to touch a
    /// directory that already holds a node.
    pub fn init(&self, owner: Option<OwnerKey>, api_listen: &str) -> anyhow::Result<OwnerKey> {
        if self.is_initialized() {
            bail!(
                "{} already holds a starling node (config.toml exists)",
                self.0.display()
            );
        }
        fs::create_dir_all(&self.0).with_context(|| format!("creating {}", self.0.display()))?;
        let owner = owner.unwrap_or_else(|| OwnerKey::Secret(Keys::generate()));
        match &owner {
            OwnerKey::Secret(keys) => write_private(
                &self.nsec(),
                format!("{}\n", keys.secret_key().to_bech32()?).as_bytes(),
            )?,
            OwnerKey::Public(pk) => fs::write(self.npub(), format!("{}\n", pk.to_bech32()?))?,
        }
        let node_key = starling_net::libp2p::identity::Keypair::generate_ed25519();
        write_private(&self.node_key(), &node_key.to_protobuf_encoding()?)?;
        fs::write(self.config(), Config::template(api_listen))?;
        Ok(owner)
    }

    /// The owner's key.
    pub fn owner(&self) -> anyhow::Result<OwnerKey> {
        if let Ok(text) = fs::read_to_string(self.nsec()) {
            let secret = SecretKey::from_bech32(text.trim())
                .with_context(|| format!("{} does not hold an nsec", self.nsec().display()))?;
            return Ok(OwnerKey::Secret(Keys::new(secret)));
        }
        let text = fs::read_to_string(self.npub()).with_context(|| {
            format!(
                "{} holds neither owner.nsec nor owner.npub",
                self.0.display()
            )
        })?;
        let pk = PublicKey::from_bech32(text.trim())
            .with_context(|| format!("{} does not hold an npub", self.npub().display()))?;
        Ok(OwnerKey::Public(pk))
    }

    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> anyhow::Result<starling_net::libp2p::identity::PeerId> {
        Ok(self.node_keypair()?.public().to_peer_id())
    }

    /// The node's libp2p key.
    pub fn node_keypair(&self) -> anyhow::Result<starling_net::libp2p::identity::Keypair> {
        let bytes = fs::read(self.node_key())
            .with_context(|| format!("reading {}", self.node_key().display()))?;
        starling_net::libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("{} is not a libp2p key", self.node_key().display()))
    }

    /// The node's libp2p key, created first if the directory has none (bootstrap nodes
    /// keep only this).
    pub fn ensure_node_keypair(&self) -> anyhow::Result<starling_net::libp2p::identity::Keypair> {
        if !self.node_key().exists() {
            fs::create_dir_all(&self.0)
                .with_context(|| format!("creating {}", self.0.display()))?;
            let key = starling_net::libp2p::identity::Keypair::generate_ed25519();
            write_private(&self.node_key(), &key.to_protobuf_encoding()?)?;
        }
        self.node_keypair()
    }

    /// The token other devices log in to the web client with; created (random, mode
    /// 0600) when the directory has none.
    pub fn web_token(&self) -> anyhow::Result<String> {
        let path = self.web_token_path();
        if !path.exists() {
            let token = starling_api::web::random_hex();
            write_private(&path, format!("{token}\n").as_bytes())?;
        }
        let token =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let token = token.trim();
        if token.len() < 16 {
            bail!(
                "{} holds a token shorter than 16 characters",
                path.display()
            );
        }
        Ok(token.to_string())
    }

    /// The durable outbox of undelivered replies, mentions and reactions.
    pub fn outbox_db(&self) -> PathBuf {
        self.0.join("outbox.db")
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Parses an `nsec` (or 64-hex secret key) given on the command line.
pub fn parse_nsec(text: &str) -> anyhow::Result<Keys> {
    let secret = SecretKey::from_bech32(text.trim())
        .or_else(|_| SecretKey::from_hex(text.trim()))
        .context("not an nsec or a hex secret key")?;
    Ok(Keys::new(secret))
}

/// Parses an `npub` (or 64-hex public key).
pub fn parse_npub(text: &str) -> anyhow::Result<PublicKey> {
    PublicKey::from_bech32(text.trim())
        .or_else(|_| PublicKey::from_hex(text.trim()))
        .with_context(|| format!("{text:?} is not an npub or a hex public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_keys_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir(tmp.path().join("node"));
        let owner = dir.init(None, "127.0.0.1:7777").unwrap();
        assert_eq!(dir.owner().unwrap().public_key(), owner.public_key());
        assert!(dir.peer_id().is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.nsec()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            dir.init(None, "127.0.0.1:7777").is_err(),
            "a second init must refuse"
        );
        let token = dir.web_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(dir.web_token().unwrap(), token, "the token is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.web_token_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_public_only_node_keeps_the_npub() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir(tmp.path().to_path_buf());
        let pk = Keys::generate().public_key();
        dir.init(Some(OwnerKey::Public(pk)), "127.0.0.1:7777")
            .unwrap();
        assert!(matches!(dir.owner().unwrap(), OwnerKey::Public(p) if p == pk));
        assert!(!dir.nsec().exists());
    }
}
