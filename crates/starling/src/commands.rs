//! `keygen`, `init`, and the dispatch of client commands to [`crate::client::actions`],
//! printing results for people or, with `--json`, for scripts.

use std::collections::HashMap;

use serde_json::json;
use starling_proto::{Event, Filter, Keys, Kind, PublicKey, ToBech32};

use crate::args::{ClientCommand, ClientOpts, InitArgs, KeygenArgs, ProfileAction};
use crate::client::{actions, api_address, get_json, NodeClient};
use crate::datadir::{parse_npub, parse_nsec, DataDir, OwnerKey};
use crate::output::{note_line, short_npub};

pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let keys = Keys::generate();
    let nsec = keys.secret_key().to_bech32()?;
    let npub = keys.public_key().to_bech32()?;
    let hex = keys.public_key().to_hex();
    if args.json {
        println!("{}", json!({ "nsec": nsec, "npub": npub, "hex": hex }));
    } else {
        println!("nsec  {nsec}\nnpub  {npub}\nhex   {hex}");
        eprintln!("Keep the nsec secret: anyone who has it can post as you.");
    }
    Ok(())
}

pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir)?;
    let owner = match (args.nsec, args.npub) {
        (Some(nsec), _) => Some(OwnerKey::Secret(parse_nsec(&nsec)?)),
        (None, Some(npub)) => Some(OwnerKey::Public(parse_npub(&npub)?)),
        (None, None) => None,
    };
    let generated = owner.is_none();
    let owner = dir.init(owner, &args.api)?;
    println!("initialized {}", dir.path().display());
    println!(
        "  owner   {}{}",
        owner.public_key().to_bech32()?,
        if generated {
            " (new key, secret in owner.nsec)"
        } else {
            ""
        }
    );
    println!("  node    {}", dir.peer_id()?);
    println!("  config  {}", dir.config().display());
    println!(
        "Start it with: starling run --data-dir {}",
        dir.path().display()
    );
    Ok(())
}

/// The key to sign with: `--nsec`, else the data directory's.
pub(crate) fn signing_keys(opts: &ClientOpts) -> anyhow::Result<Keys> {
    if let Some(nsec) = &opts.nsec {
        return parse_nsec(nsec);
    }
    let dir = DataDir::resolve(opts.dir.data_dir.clone())?;
    match dir.owner()? {
        OwnerKey::Secret(keys) => Ok(keys),
        OwnerKey::Public(_) => anyhow::bail!(
            "{} holds only the owner's npub, so it cannot sign; pass --nsec (or STARLING_NSEC)",
            dir.path().display()
        ),
    }
}

/// The owner's public key, for read-only commands.
fn owner_key(opts: &ClientOpts) -> anyhow::Result<PublicKey> {
    if let Some(nsec) = &opts.nsec {
        return Ok(parse_nsec(nsec)?.public_key());
    }
    Ok(DataDir::resolve(opts.dir.data_dir.clone())?
        .owner()?
        .public_key())
}

fn print_published(opts: &ClientOpts, what: &str, event: &Event) {
    if opts.json {
        println!(
            "{}",
            serde_json::to_string(event).expect("an event serializes")
        );
    } else {
        println!("{what} {}", event.id.to_hex());
    }
}

pub async fn client(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Status { opts } => status(&opts).await,
        ClientCommand::Dm { args, opts } => crate::dms::dm(&opts, &args).await,
        ClientCommand::Dms { npub, limit, opts } => {
            crate::dms::dms(&opts, npub.as_deref(), limit).await
        }
        ClientCommand::Whereis { npub, opts } => whereis(&opts, &npub).await,
        ClientCommand::Timeline {
            limit,
            follow,
            opts,
        } => timeline(&opts, limit, follow).await,
        ClientCommand::Profile { action, opts } => profile(&opts, action).await,
        ClientCommand::Post { text, opts } => {
            publish(&opts, "posted", |c, k| {
                Box::pin(async move { actions::post(c, k, &text).await })
            })
            .await
        }
        ClientCommand::Reply { event, text, opts } => {
            publish(&opts, "replied", |c, k| {
                Box::pin(async move { actions::reply(c, k, &event, &text).await })
            })
            .await
        }
        ClientCommand::Repost { event, opts } => {
            publish(&opts, "reposted", |c, k| {
                Box::pin(async move { actions::repost(c, k, &event).await })
            })
            .await
        }
        ClientCommand::React {
            event,
            reaction,
            opts,
        } => {
            publish(&opts, "reacted", |c, k| {
                Box::pin(async move { actions::react(c, k, &event, &reaction).await })
            })
            .await
        }
        ClientCommand::Follow { npub, opts } => {
            publish(&opts, "followed; new follow list", |c, k| {
                Box::pin(async move { actions::set_follow(c, k, &npub, true).await })
            })
            .await
        }
        ClientCommand::Unfollow { npub, opts } => {
            publish(&opts, "unfollowed; new follow list", |c, k| {
                Box::pin(async move { actions::set_follow(c, k, &npub, false).await })
            })
            .await
        }
    }
}

type ActionFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Event>> + 'a>>;

/// Connects, signs and publishes with `action`, and reports the event.
async fn publish<F>(opts: &ClientOpts, what: &str, action: F) -> anyhow::Result<()>
where
    F: for<'a> FnOnce(&'a mut NodeClient, &'a Keys) -> ActionFuture<'a>,
{
    let keys = signing_keys(opts)?;
    let mut client = NodeClient::connect(&api_address(opts)?).await?;
    let event = action(&mut client, &keys).await?;
    print_published(opts, what, &event);
    Ok(())
}

async fn status(opts: &ClientOpts) -> anyhow::Result<()> {
    let addr = api_address(opts)?;
    let status = get_json(&addr, "/api/status").await?;
    if opts.json {
        println!("{status}");
        return Ok(());
    }
    let get = |k: &str| {
        status
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    println!("starling {} at {addr}", get("version"));
    println!("  owner        {}", get("owner_npub"));
    println!("  uptime       {} s", get("uptime_secs"));
    println!(
        "  events       {} ({} bytes)",
        get("events"),
        get("event_bytes")
    );
    println!("  connections  {}", get("connections"));
    match status.get("network") {
        Some(net) => print_network(net),
        None => println!("  network      off (local relay only)"),
    }
    Ok(())
}

fn print_network(net: &serde_json::Value) {
    let s = |k: &str| {
        net.get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let list = |k: &str| -> Vec<String> {
        net.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    println!("  peer id      {}", s("peer_id"));
    println!(
        "  reachability {} (DHT {} mode)",
        s("reachability").replace('_', " "),
        s("dht_mode")
    );
    for (label, key) in [
        ("listening", "listen_addrs"),
        ("external", "external_addrs"),
        ("advertised", "advertised_addrs"),
    ] {
        let addrs = list(key);
        if addrs.is_empty() {
            println!("  {label:<12} -");
        }
        for (i, a) in addrs.iter().enumerate() {
            println!("  {:<12} {a}", if i == 0 { label } else { "" });
        }
    }
    let peers = net
        .get("peers")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let relayed = peers
        .iter()
        .filter(|p| p.get("path").and_then(|v| v.as_str()) == Some("relayed"))
        .count();
    println!(
        "  peers        {} connected ({relayed} through a relay)",
        peers.len()
    );
    println!(
        "  DHT          {} peers in the routing table, about {} nodes in all",
        s("dht_routing_peers"),
        s("dht_size_estimate")
    );
    println!(
        "  follows      {} followed, {} subscribers here",
        s("follows"),
        s("subscribers")
    );
    println!(
        "  home sets    this node keeps the events of {} other user(s)",
        s("home_for")
    );
    let outbox = net.get("outbox");
    let o = |k: &str| {
        outbox
            .and_then(|v| v.get(k))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    println!(
        "  outbox       {} waiting, {} delivered, {} given up",
        o("pending"),
        o("delivered"),
        o("given_up")
    );
    println!(
        "  broadcast    {}",
        if s("broadcast") == "true" {
            "on"
        } else {
            "off"
        }
    );
}

async fn whereis(opts: &ClientOpts, who: &str) -> anyhow::Result<()> {
    let pk = parse_npub(who)?;
    let addr = api_address(opts)?;
    let record = get_json(&addr, &format!("/api/whereis/{}", pk.to_hex())).await?;
    if opts.json {
        println!("{record}");
        return Ok(());
    }
    println!("{}", pk.to_bech32()?);
    println!(
        "  node         {}",
        record["peer_id"].as_str().unwrap_or("")
    );
    for a in record["addrs"].as_array().cloned().unwrap_or_default() {
        println!("  address      {}", a.as_str().unwrap_or(""));
    }
    println!("  signed at    {}", record["created_at"]);
    let members = record["home_set"].as_array().cloned().unwrap_or_default();
    if members.is_empty() {
        println!("  home set     none known yet");
    }
    for (i, m) in members.iter().enumerate() {
        let role = if i == 0 { "primary" } else { "member" };
        println!(
            "  home set     {} ({role})",
            m["peer_id"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn profile(opts: &ClientOpts, action: Option<ProfileAction>) -> anyhow::Result<()> {
    let mut client = NodeClient::connect(&api_address(opts)?).await?;
    match action.unwrap_or(ProfileAction::Show { npub: None }) {
        ProfileAction::Show { npub } => {
            let who = match npub {
                Some(npub) => parse_npub(&npub)?,
                None => owner_key(opts)?,
            };
            let found = actions::profile(&mut client, who).await?;
            match (found, opts.json) {
                (Some((event, _)), true) => println!("{}", serde_json::to_string(&event)?),
                (Some((_, fields)), false) => {
                    println!("{}", who.to_bech32()?);
                    for key in [
                        "name",
                        "display_name",
                        "about",
                        "picture",
                        "nip05",
                        "website",
                    ] {
                        if let Some(value) = fields.get(key).and_then(|v| v.as_str()) {
                            println!("  {key:<12} {value}");
                        }
                    }
                }
                (None, true) => println!("null"),
                (None, false) => println!("{}: no profile on this node", who.to_bech32()?),
            }
        }
        ProfileAction::Set {
            name,
            about,
            picture,
        } => {
            let keys = signing_keys(opts)?;
            let changes = [("name", name), ("about", about), ("picture", picture)];
            let event = actions::set_profile(&mut client, &keys, &changes).await?;
            print_published(opts, "profile updated", &event);
        }
    }
    Ok(())
}

/// Display names of `authors` from their kind-0 profiles, short npubs otherwise.
async fn names(
    client: &mut NodeClient,
    authors: Vec<PublicKey>,
) -> anyhow::Result<HashMap<PublicKey, String>> {
    let mut names: HashMap<PublicKey, String> =
        authors.iter().map(|pk| (*pk, short_npub(pk))).collect();
    if authors.is_empty() {
        return Ok(names);
    }
    for event in client
        .query(vec![Filter::new().authors(authors).kind(Kind::Metadata)])
        .await?
    {
        let fields: serde_json::Value = serde_json::from_str(&event.content).unwrap_or_default();
        if let Some(name) = fields
            .get("name")
            .and_then(|v| v.as_str())
            .filter(|n| !n.is_empty())
        {
            names.insert(
                event.pubkey,
                format!("{name} ({})", short_npub(&event.pubkey)),
            );
        }
    }
    Ok(names)
}

async fn timeline(opts: &ClientOpts, limit: usize, follow: bool) -> anyhow::Result<()> {
    let owner = owner_key(opts)?;
    let mut client = NodeClient::connect(&api_address(opts)?).await?;
    let filters = actions::timeline_filters(&mut client, owner, limit).await?;
    let mut events = client.query(filters.clone()).await?;
    events.truncate(limit);
    let authors: Vec<PublicKey> = events.iter().map(|e| e.pubkey).collect();
    let known = names(&mut client, authors).await?;
    for event in &events {
        show(opts, event, &known)?;
    }
    if !follow {
        return Ok(());
    }
    let live: Vec<Filter> = filters.into_iter().map(|f| f.limit(0)).collect();
    // Names of new authors are not looked up while streaming: a lookup on this
    // connection would race with the live events.
    let sub = client.subscribe(live).await?;
    while client.next_event(&sub, None).await?.is_some() {}
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = client.next_event(&sub, None) => {
                let Some(event) = next? else {
                    anyhow::bail!("the node closed the connection");
                };
                show(opts, &event, &known)?;
            }
        }
    }
}

fn show(
    opts: &ClientOpts,
    event: &Event,
    names: &HashMap<PublicKey, String>,
) -> anyhow::Result<()> {
    if opts.json {
        println!("{}", serde_json::to_string(event)?);
    } else {
        let name = names
            .get(&event.pubkey)
            .cloned()
            .unwrap_or_else(|| short_npub(&event.pubkey));
        println!("{}\n", note_line(event, &name));
    }
    Ok(())
}
