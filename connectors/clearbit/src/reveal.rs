//! Clearbit Reveal: the company behind an IP address, for users whose email found none (or who have no
//! email) and for anonymous users. Its answers are read by the same rules as Enrichment's
//! ([`crate::answer`]), its company is named by the same catalogue, so that one segment covers both;
//! it is billed per distinct address, so each address is looked up once a run, and its answer kept in
//! the state's result cache for `refresh`, for the runs that follow.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use enrich_core::selection::PropertySelection;
use enrich_core::{ConnectorError, Lookup, LookupKey, PropertyValue, Record, ResultCache, StateError};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::catalogue::{COMPANY_SOURCE, REVEAL_CONFIDENCE, REVEAL_FUZZY, REVEAL_TYPE};

/// Maps a Reveal answer: the company's attributes the selection includes, under Enrichment's names,
/// `Clearbit: Company Source` = `reveal`, and what Reveal says of the match. Its confidence comes as
/// `confidenceScore` (a word) or `confidence_score` (a number): either is taken.
pub fn map_reveal(response: &Value, selection: &PropertySelection) -> Record {
    let company = response.get("company").and_then(Value::as_object);
    let mut record = selection.map([("company", company)]);
    let text = |field: &str| match response.get(field)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    };
    let about_the_match = [
        (COMPANY_SOURCE, company.map(|_| "reveal".to_owned())),
        (REVEAL_FUZZY, text("fuzzy")),
        (REVEAL_TYPE, text("type")),
        (REVEAL_CONFIDENCE, text("confidenceScore").or_else(|| text("confidence_score"))),
    ];
    for (name, value) in about_the_match {
        if let Some(value) = value {
            record.properties.insert(name.to_owned(), PropertyValue::Text(value));
        }
    }
    record
}

/// Whether an address may be sent to Reveal: private, loopback, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast and reserved addresses name no company network, and sending
/// them would only disclose the user's network.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [first, second, third, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || first == 0
        || first >= 240
        || (first == 100 && (64..128).contains(&second))
        || (first == 192 && second == 0 && third == 0)
        || (first == 198 && (18..20).contains(&second)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (first == 0x2001 && second == 0x0db8)
        || first & 0xe000 != 0x2000)
}

/// What a Reveal lookup came to: a company's record, or none.
pub(crate) type RevealOutcome = Result<Option<Record>, ConnectorError>;

/// The answers of one run, one per address: users sharing an office address share its lookup, whether
/// they come with the address as their key or as the fallback of an email that found no company. An
/// answer kept by an earlier run within `refresh` is taken from the run's result cache instead.
#[derive(Debug, Default)]
pub(crate) struct RevealAnswers {
    cells: Mutex<HashMap<IpAddr, Arc<OnceCell<RevealOutcome>>>>,
    kept: Mutex<Option<ResultCache>>,
}

impl RevealAnswers {
    /// Starts a run with its cache (`None`: the run is over): what earlier runs asked is in the cache.
    pub(crate) fn use_cache(&self, cache: Option<ResultCache>) {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).clear();
        *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = cache;
    }

    /// The answer for `ip`, asked with `ask` only by the first lookup of the address; `None` when that
    /// lookup was stopped before an answer, which leaves the address to the next one.
    pub(crate) async fn get<F, Fut>(&self, ip: IpAddr, ask: F) -> Option<RevealOutcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<RevealOutcome>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(cells.entry(ip).or_default())
        };
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let answer = cell.get_or_try_init(|| async { ask_through(kept, ip, ask).await.ok_or(()) }).await;
        answer.ok().cloned()
    }
}

/// The answer `kept` holds for `ip`, or else `ask`'s, which is kept.
async fn ask_through<F, Fut>(kept: Option<ResultCache>, ip: IpAddr, ask: F) -> Option<RevealOutcome>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<RevealOutcome>>,
{
    let Some(kept) = kept else { return ask().await };
    let key = LookupKey::Ip(ip);
    match kept.get(&key) {
        Ok(Some(Lookup::Found(company))) => return Some(Ok(Some(company))),
        Ok(Some(_)) => return Some(Ok(None)),
        Ok(None) => {}
        Err(error) => return Some(Err(state_failed(&error))),
    }
    let outcome = ask().await?;
    let lookup = match &outcome {
        Ok(Some(company)) => Lookup::Found(company.clone()),
        Ok(None) => Lookup::NotFound(Record::default()),
        Err(_) => return Some(outcome),
    };
    Some(kept.put(&key, &lookup).map_or_else(|error| Err(state_failed(&error)), |()| outcome))
}

/// A state that cannot keep answers stops the run, as it would in the engine.
fn state_failed(error: &StateError) -> ConnectorError {
    ConnectorError::Fatal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_sent() {
        for public in ["81.2.69.160", "34.120.5.1", "2a00:1450:4001:81c::200e", "::ffff:81.2.69.160"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "203.0.113.7",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }
}
