//! The audit log's chain: each entry carries the hash of the one before it
//! and its own hash over every field, so an edited, reordered or deleted
//! entry breaks the chain where it happened. The store appends entries in
//! one transaction with the head (the last sequence number and hash), which
//! also catches the deletion of the newest entries.

/// What happened, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub time_ms: i64,
    /// Who: a user, a service account, `anonymous`.
    pub actor: String,
    /// The token the request carried (its public id), if any.
    pub token_id: Option<String>,
    /// What was attempted: `registered_model.alias.set`, `user.create`, ...
    pub action: String,
    /// On what: `registered_model:iris`, `experiment:3`, ...
    pub resource: String,
    /// `allowed`, `denied`, or the error that stopped it.
    pub outcome: String,
    /// Where the request came from (the peer address).
    pub source: String,
    /// Why, when the actor said (a protected alias moved by hand).
    pub reason: Option<String>,
}

/// One sealed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
    /// The previous entry's hash (hex); [`GENESIS`] for the first.
    pub prev: String,
    /// This entry's hash over `seq`, the event and `prev` (hex).
    pub hash: String,
}

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn digest(seq: u64, event: &Event, prev: &str) -> String {
    // A canonical encoding: JSON of a tuple in a fixed order.
    let body = serde_json::to_vec(&(seq, event, prev)).unwrap_or_default();
    blake3::hash(&body).to_hex().to_string()
}

/// Seals `event` after `last` (`None`: the first entry).
pub fn seal(last: Option<(u64, &str)>, event: Event) -> Entry {
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h.to_owned()),
        None => (1, GENESIS.to_owned()),
    };
    let hash = digest(seq, &event, &prev);
    Entry {
        seq,
        event,
        prev,
        hash,
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error("entry {seq} was edited: its contents no longer match its hash")]
    Edited { seq: u64 },
    #[error("entries {from} to {to} are missing")]
    Missing { from: u64, to: u64 },
    #[error("entry {seq} is out of order (expected {expected})")]
    OutOfOrder { seq: u64, expected: u64 },
    #[error("entry {seq} does not follow the entry before it (that one was replaced)")]
    Unlinked { seq: u64 },
    #[error(
        "the log ends at entry {last} but its head records entry {head}: the newest entries were removed"
    )]
    Truncated { last: u64, head: u64 },
}

/// Checks a whole log, oldest first, against its recorded head (the last
/// sequence number and hash). Returns the number of entries checked.
pub fn verify(entries: &[Entry], head: Option<(u64, &str)>) -> Result<u64, Break> {
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1;
    for e in entries {
        if e.seq > expected {
            return Err(Break::Missing {
                from: expected,
                to: e.seq - 1,
            });
        }
        if e.seq < expected {
            return Err(Break::OutOfOrder {
                seq: e.seq,
                expected,
            });
        }
        if digest(e.seq, &e.event, &e.prev) != e.hash {
            return Err(Break::Edited { seq: e.seq });
        }
        if e.prev != prev_hash {
            return Err(Break::Unlinked { seq: e.seq });
        }
        prev_hash = e.hash.clone();
        expected += 1;
    }
    let last = expected - 1;
    match head {
        Some((seq, _)) if seq > last => Err(Break::Truncated { last, head: seq }),
        Some((seq, hash)) if seq == last && last > 0 && hash != prev_hash => {
            Err(Break::Edited { seq })
        }
        _ => Ok(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> Event {
        Event {
            time_ms: 1_700_000_000_000,
            actor: "ana".into(),
            token_id: None,
            action: action.into(),
            resource: "registered_model:iris".into(),
            outcome: "allowed".into(),
            source: "127.0.0.1".into(),
            reason: None,
        }
    }

    fn chain(n: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for i in 0..n {
            let last = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = seal(last, event(&format!("action.{i}")));
            out.push(e);
        }
        out
    }

    fn head(log: &[Entry]) -> Option<(u64, &str)> {
        log.last().map(|e| (e.seq, e.hash.as_str()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let log = chain(5);
        assert_eq!(verify(&log, head(&log)), Ok(5));
        assert_eq!(verify(&[], None), Ok(0));
        assert_eq!(log[0].prev, GENESIS);
        assert_eq!(log[3].prev, log[2].hash);
    }

    #[test]
    fn every_kind_of_tampering_is_found_and_placed() {
        let log = chain(5);
        let h = (log[4].seq, log[4].hash.clone());
        let head = Some((h.0, h.1.as_str()));

        let mut edited = log.clone();
        edited[2].event.outcome = "denied".into();
        assert_eq!(verify(&edited, head), Err(Break::Edited { seq: 3 }));

        // Edited and re-hashed: the next entry no longer follows it.
        let mut rehashed = log.clone();
        rehashed[2].event.actor = "mallory".into();
        rehashed[2].hash = digest(3, &rehashed[2].event, &rehashed[2].prev);
        assert_eq!(verify(&rehashed, head), Err(Break::Unlinked { seq: 4 }));

        let mut deleted = log.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, head),
            Err(Break::Missing { from: 2, to: 2 })
        );

        let mut swapped = log.clone();
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, head),
            Err(Break::Missing { from: 2, to: 2 })
        );

        let truncated = &log[..3];
        assert_eq!(
            verify(truncated, head),
            Err(Break::Truncated { last: 3, head: 5 })
        );

        let mut duplicated = log.clone();
        duplicated.insert(2, log[1].clone());
        assert_eq!(
            verify(&duplicated, head),
            Err(Break::OutOfOrder {
                seq: 2,
                expected: 3
            })
        );
    }
}
