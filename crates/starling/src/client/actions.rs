//! The CLI's client commands, each building (and signing) events and sending them to the
//! node, or reading from it. Events follow what other Nostr clients do: NIP-10 reply tags,
//! NIP-18 reposts, NIP-25 reactions, NIP-02 follow lists, NIP-01 profiles.

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use starling_proto::nip19::Nip19Event;
use starling_proto::{
    Event, EventBuilder, EventId, Filter, FinalizeEvent, FromBech32, Keys, Kind, PublicKey, Tag,
    Timestamp,
};

use super::NodeClient;
use crate::datadir::parse_npub;

/// Parses a note id given as hex, `note1…` or `nevent1…`: the id and, for an `nevent1…` that names it, its author.
fn parse_event_ref(text: &str) -> anyhow::Result<(EventId, Option<PublicKey>)> {
    let text = text.trim();
    EventId::from_hex(text)
        .or_else(|_| EventId::from_bech32(text))
        .map(|id| (id, None))
        .or_else(|_| Nip19Event::from_bech32(text).map(|n| (n.event_id, n.author)))
        .with_context(|| format!("{text:?} is not an event id (hex, note1… or nevent1…)"))
}

fn sign(keys: &Keys, builder: EventBuilder) -> anyhow::Result<Event> {
    builder.finalize(keys).context("signing the event")
}

/// Fetches the event `target` (hex, note1… or nevent1…) from the node, or says it does not
/// have it. With an nevent's author the node can fetch an author it never saw from the
/// network first.
async fn fetch(client: &mut NodeClient, target: &str) -> anyhow::Result<Event> {
    let (id, author) = parse_event_ref(target)?;
    let mut filter = Filter::new().id(id);
    if let Some(author) = author {
        filter = filter.author(author);
    }
    client.query_one(filter).await?.with_context(|| {
        format!(
            "the node does not have event {id}{}",
            if author.is_none() {
                " (an nevent1… with its author lets the node fetch it from the network)"
            } else {
                ""
            }
        )
    })
}

pub async fn post(client: &mut NodeClient, keys: &Keys, text: &str) -> anyhow::Result<Event> {
    let event = sign(keys, EventBuilder::new(Kind::TextNote, text))?;
    client.publish(&event).await?;
    Ok(event)
}

/// A NIP-10 reply: marked `root` and `reply` e-tags, and p-tags for everyone in the thread.
pub async fn reply(
    client: &mut NodeClient,
    keys: &Keys,
    target: &str,
    text: &str,
) -> anyhow::Result<Event> {
    let parent = fetch(client, target).await?;
    let root = parent
        .tags
        .iter()
        .find(|t| {
            t.as_slice().first().map(String::as_str) == Some("e")
                && t.as_slice().get(3).map(String::as_str) == Some("root")
        })
        .and_then(|t| {
            t.as_slice()
                .get(1)
                .and_then(|id| EventId::from_hex(id).ok())
        });
    let mut tags = Vec::new();
    match root {
        Some(root) if root != parent.id => {
            tags.push(Tag::parse(["e", &root.to_hex(), "", "root"])?);
            tags.push(Tag::parse(["e", &parent.id.to_hex(), "", "reply"])?);
        }
        _ => tags.push(Tag::parse(["e", &parent.id.to_hex(), "", "root"])?),
    }
    let mut mentioned: Vec<PublicKey> = vec![parent.pubkey];
    mentioned.extend(parent.tags.public_keys());
    mentioned.retain(|pk| *pk != keys.public_key());
    mentioned.dedup();
    let mut seen = std::collections::HashSet::new();
    tags.extend(
        mentioned
            .into_iter()
            .filter(|pk| seen.insert(*pk))
            .map(Tag::public_key),
    );
    let event = sign(keys, EventBuilder::new(Kind::TextNote, text).tags(tags))?;
    client.publish(&event).await?;
    Ok(event)
}

/// A NIP-18 repost: kind 6 with the reposted event as content.
pub async fn repost(client: &mut NodeClient, keys: &Keys, target: &str) -> anyhow::Result<Event> {
    let original = fetch(client, target).await?;
    let content = serde_json::to_string(&original)?;
    let tags = [
        Tag::parse(["e", &original.id.to_hex(), ""])?,
        Tag::public_key(original.pubkey),
    ];
    let event = sign(keys, EventBuilder::new(Kind::Repost, content).tags(tags))?;
    client.publish(&event).await?;
    Ok(event)
}

/// A NIP-25 reaction.
pub async fn react(
    client: &mut NodeClient,
    keys: &Keys,
    target: &str,
    reaction: &str,
) -> anyhow::Result<Event> {
    let original = fetch(client, target).await?;
    let tags = [Tag::event(original.id), Tag::public_key(original.pubkey)];
    let event = sign(keys, EventBuilder::new(Kind::Reaction, reaction).tags(tags))?;
    client.publish(&event).await?;
    Ok(event)
}

/// A timestamp after `previous`, so a replaceable event always supersedes it.
fn after(previous: Option<&Event>) -> Timestamp {
    let now = Timestamp::now();
    match previous {
        Some(p) if p.created_at >= now => p.created_at + 1,
        _ => now,
    }
}

/// Adds or removes `who` in the owner's NIP-02 follow list, keeping everything else.
pub async fn set_follow(
    client: &mut NodeClient,
    keys: &Keys,
    who: &str,
    follow: bool,
) -> anyhow::Result<Event> {
    let target = parse_npub(who)?;
    let current = client
        .query_one(
            Filter::new()
                .author(keys.public_key())
                .kind(Kind::ContactList),
        )
        .await?;
    let (mut tags, content) = match &current {
        Some(e) => (e.tags.clone().to_vec(), e.content.clone()),
        None => (Vec::new(), String::new()),
    };
    let is_target = |t: &Tag| {
        t.as_slice().first().map(String::as_str) == Some("p")
            && t.as_slice().get(1) == Some(&target.to_hex())
    };
    let present = tags.iter().any(is_target);
    match (follow, present) {
        (true, true) => bail!("you already follow {who}"),
        (false, false) => bail!("you do not follow {who}"),
        (true, false) => tags.push(Tag::public_key(target)),
        (false, true) => tags.retain(|t| !is_target(t)),
    }
    let builder = EventBuilder::new(Kind::ContactList, content)
        .tags(tags)
        .custom_created_at(after(current.as_ref()));
    let event = sign(keys, builder)?;
    client.publish(&event).await?;
    Ok(event)
}

/// The newest kind-0 profile of `who`, as its JSON object.
pub async fn profile(
    client: &mut NodeClient,
    who: PublicKey,
) -> anyhow::Result<Option<(Event, Map<String, Value>)>> {
    let Some(event) = client
        .query_one(Filter::new().author(who).kind(Kind::Metadata))
        .await?
    else {
        return Ok(None);
    };
    let fields = serde_json::from_str::<Map<String, Value>>(&event.content).unwrap_or_default();
    Ok(Some((event, fields)))
}

/// Sets fields of the owner's profile, keeping the others.
pub async fn set_profile(
    client: &mut NodeClient,
    keys: &Keys,
    changes: &[(&str, Option<String>)],
) -> anyhow::Result<Event> {
    if changes.iter().all(|(_, v)| v.is_none()) {
        bail!("nothing to set: give --name, --about or --picture");
    }
    let current = profile(client, keys.public_key()).await?;
    let mut fields = current.as_ref().map(|(_, f)| f.clone()).unwrap_or_default();
    for (key, value) in changes {
        if let Some(value) = value {
            fields.insert((*key).to_string(), Value::from(value.as_str()));
        }
    }
    let builder = EventBuilder::new(Kind::Metadata, Value::Object(fields).to_string())
        .custom_created_at(after(current.as_ref().map(|(e, _)| e)));
    let event = sign(keys, builder)?;
    client.publish(&event).await?;
    Ok(event)
}

/// Filters for the home timeline of `owner`: own notes and reposts, those of followed
/// authors, and notes mentioning the owner.
pub async fn timeline_filters(
    client: &mut NodeClient,
    owner: PublicKey,
    limit: usize,
) -> anyhow::Result<Vec<Filter>> {
    let follows = client
        .query_one(Filter::new().author(owner).kind(Kind::ContactList))
        .await?;
    let mut authors: Vec<PublicKey> = follows
        .map(|e| e.tags.public_keys().collect())
        .unwrap_or_default();
    authors.push(owner);
    let kinds = [Kind::TextNote, Kind::Repost];
    Ok(vec![
        Filter::new().authors(authors).kinds(kinds).limit(limit),
        Filter::new().pubkey(owner).kinds(kinds).limit(limit),
    ])
}
