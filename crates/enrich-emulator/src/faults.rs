//! Failures injected into a share of requests, so clients' retries, timeouts and parsers meet what real
//! networks and services do to them. Which request gets which fault comes from a seeded stream, so a run
//! with the same seed and the same requests in the same order meets the same faults.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use axum::body::Body;
use futures::{StreamExt, stream};

use crate::generate::Draw;

/// Failures injected into a share of one API's requests. Each request gets at most one fault, each kind
/// for its own share of requests, so the shares add up to at most 1. The default injects none.
///
/// Parses from the `--clearbit-faults` / `--heap-faults` syntax, e.g.
/// `429=0.2,5xx=0.2,queued=0.2,slow=0.1,drop=0.1,malformed=0.1,slow-delay-ms=500`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// `429`: a 429 `rate_limit` answer (Clearbit's error body; Heap's reason phrase).
    pub too_many_requests: f64,
    /// `5xx`: 500, 502 and 503 in turn.
    pub server_error: f64,
    /// `queued` (Clearbit only): a 202 `queued` answer to the first ask for an email (or domain); later
    /// asks get the normal answer. Asks after the first draw no fault when they land in this share, so
    /// this is the share of distinct emails queued.
    pub queued: f64,
    /// `slow`: the normal answer, after `slow_delay` more.
    pub slow: f64,
    /// How long a `slow` answer is held, on top of any configured latency. `slow-delay-ms` in the syntax.
    pub slow_delay: Duration,
    /// `drop`: the connection is cut. Heap's is cut before anything is sent; Clearbit's alternately before
    /// anything is sent and after the 200 head and half of the record, so clients meet both a failed
    /// request and a failed body.
    pub dropped: f64,
    /// `malformed`: a 200 whose body is not valid JSON (Clearbit: the first half of the record).
    pub malformed: f64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            too_many_requests: 0.0,
            server_error: 0.0,
            queued: 0.0,
            slow: 0.0,
            slow_delay: Duration::from_secs(2),
            dropped: 0.0,
            malformed: 0.0,
        }
    }
}

/// How many faults of each kind one API was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiFaultCounts {
    pub too_many_requests: u64,
    pub server_error: u64,
    pub queued: u64,
    pub slow: u64,
    pub dropped: u64,
    pub malformed: u64,
}

impl ApiFaultCounts {
    pub fn total(&self) -> u64 {
        FaultKind::ALL.into_iter().map(|kind| self.get(kind)).sum()
    }

    fn get(&self, kind: FaultKind) -> u64 {
        // Reads through a copy so one match serves reading and writing.
        let mut counts = *self;
        *counts.count_mut(kind)
    }

    fn count_mut(&mut self, kind: FaultKind) -> &mut u64 {
        match kind {
            FaultKind::TooManyRequests => &mut self.too_many_requests,
            FaultKind::ServerError => &mut self.server_error,
            FaultKind::Queued => &mut self.queued,
            FaultKind::Slow => &mut self.slow,
            FaultKind::Dropped => &mut self.dropped,
            FaultKind::Malformed => &mut self.malformed,
        }
    }
}

/// Every fault the emulator injected, and every lookup its enforced limits refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub clearbit: ApiFaultCounts,
    pub heap: ApiFaultCounts,
    /// Clearbit lookups refused with 429 because the minute's allowance was spent.
    pub rate_limited: u64,
    /// Clearbit lookups refused with 400 `rate_limit` because too many were being answered.
    pub concurrency_limited: u64,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    TooManyRequests,
    ServerError,
    Queued,
    Slow,
    Dropped,
    Malformed,
}

impl FaultKind {
    /// In the order their shares are laid out on `[0, 1)` when drawing.
    const ALL: [FaultKind; 6] = [
        FaultKind::TooManyRequests,
        FaultKind::ServerError,
        FaultKind::Queued,
        FaultKind::Slow,
        FaultKind::Dropped,
        FaultKind::Malformed,
    ];

    /// The name in the `--clearbit-faults` syntax.
    fn name(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "429",
            FaultKind::ServerError => "5xx",
            FaultKind::Queued => "queued",
            FaultKind::Slow => "slow",
            FaultKind::Dropped => "drop",
            FaultKind::Malformed => "malformed",
        }
    }
}

const SLOW_DELAY_NAME: &str = "slow-delay-ms";

impl Faults {
    fn share(&self, kind: FaultKind) -> f64 {
        // Reads through a copy so one match serves reading and writing.
        let mut faults = *self;
        *faults.share_mut(kind)
    }

    fn share_mut(&mut self, kind: FaultKind) -> &mut f64 {
        match kind {
            FaultKind::TooManyRequests => &mut self.too_many_requests,
            FaultKind::ServerError => &mut self.server_error,
            FaultKind::Queued => &mut self.queued,
            FaultKind::Slow => &mut self.slow,
            FaultKind::Dropped => &mut self.dropped,
            FaultKind::Malformed => &mut self.malformed,
        }
    }

    /// Names what makes these faults impossible to inject.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(kind) = FaultKind::ALL.into_iter().find(|&kind| !(0.0..=1.0).contains(&self.share(kind)))
        {
            return Err(format!("the {} share {} is not between 0 and 1", kind.name(), self.share(kind)));
        }
        let total: f64 = FaultKind::ALL.into_iter().map(|kind| self.share(kind)).sum();
        // Allows for rounding in shares such as 0.1 + 0.2 + 0.7.
        if total > 1.0 + 1e-9 {
            return Err(format!("the fault shares add up to {total}, more than 1"));
        }
        Ok(())
    }
}

impl FromStr for Faults {
    type Err = String;

    /// `NAME=VALUE` pairs separated by commas; the empty string is no faults.
    fn from_str(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not NAME=VALUE"));
            };
            let (name, value) = (name.trim(), value.trim());
            if name == SLOW_DELAY_NAME {
                let millis =
                    value.parse().map_err(|_| format!("{SLOW_DELAY_NAME}={value}: not milliseconds"))?;
                faults.slow_delay = Duration::from_millis(millis);
                continue;
            }
            let Some(kind) = FaultKind::ALL.into_iter().find(|kind| kind.name() == name) else {
                let known: Vec<_> = FaultKind::ALL.into_iter().map(FaultKind::name).collect();
                return Err(format!(
                    "unknown fault {name:?}: the faults are {} (shares from 0 to 1) and {SLOW_DELAY_NAME}",
                    known.join(", ")
                ));
            };
            *faults.share_mut(kind) = value.parse().map_err(|_| format!("{name}={value}: not a number"))?;
        }
        faults.check()?;
        Ok(faults)
    }
}

/// A fault one request gets, with what it needs to be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    TooManyRequests,
    ServerError(u16),
    Queued,
    Slow(Duration),
    /// Alternately before and after the head; Heap always cuts before.
    Dropped(Cut),
    Malformed,
}

/// Where a dropped connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Before anything is sent: the client's request fails.
    BeforeHead,
    /// After the head and the first half of the body: the client gets a status, then a failing body.
    AfterHead,
}

/// Draws the fault, if any, each request of one API gets, and counts those given.
#[derive(Debug)]
pub(crate) struct FaultDraw {
    faults: Faults,
    draw: Draw,
    counts: ApiFaultCounts,
}

impl FaultDraw {
    /// `api` salts the seed so Clearbit's and Heap's draws are independent.
    pub(crate) fn new(faults: Faults, seed: u64, api: &str) -> FaultDraw {
        FaultDraw {
            faults,
            draw: Draw::seeded(&format!("{api} faults:{seed}")),
            counts: ApiFaultCounts::default(),
        }
    }

    pub(crate) fn counts(&self) -> ApiFaultCounts {
        self.counts
    }

    /// The fault for the next request. `first_ask` says whether it is the first ask for its email: only
    /// those can be queued.
    pub(crate) fn next(&mut self, first_ask: bool) -> Option<Fault> {
        // One roll on [0, 1), where each kind owns a stretch as long as its share.
        let roll = self.draw.unit();
        let mut stretch_end = 0.0;
        let kind = FaultKind::ALL.into_iter().find(|&kind| {
            stretch_end += self.faults.share(kind);
            roll < stretch_end
        })?;
        let given_before = self.counts.get(kind);
        let fault = match kind {
            FaultKind::Queued if !first_ask => return None,
            FaultKind::Queued => Fault::Queued,
            FaultKind::TooManyRequests => Fault::TooManyRequests,
            FaultKind::ServerError => Fault::ServerError([500, 502, 503][(given_before % 3) as usize]),
            FaultKind::Slow => Fault::Slow(self.faults.slow_delay),
            FaultKind::Dropped => {
                Fault::Dropped(if given_before.is_multiple_of(2) { Cut::BeforeHead } else { Cut::AfterHead })
            }
            FaultKind::Malformed => Fault::Malformed,
        };
        *self.counts.count_mut(kind) += 1;
        Some(fault)
    }
}

/// A response body that breaks the connection where `cut` says, `body` being the one it stands for.
///
/// Hyper drops the connection, with whatever it has not sent yet, when a body fails. Failing at once
/// discards the head it has buffered; waiting once first lets it flush the head and the part sent.
pub(crate) fn broken_body(cut: Cut, body: &str) -> Body {
    let sent_part = match cut {
        Cut::BeforeHead => None,
        Cut::AfterHead => Some(first_half(body)),
    };
    let failure = async move {
        if cut == Cut::AfterHead {
            tokio::task::yield_now().await;
        }
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "the emulator dropped the connection"))
    };
    Body::from_stream(stream::iter(sent_part.map(Ok)).chain(stream::once(failure)))
}

/// The first half of `text`, which for a JSON object is never valid JSON.
pub(crate) fn first_half(text: &str) -> String {
    let half = (0..=text.len() / 2).rev().find(|&index| text.is_char_boundary(index)).unwrap_or(0);
    text[..half].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syntax_sets_each_share_and_the_slow_delay() {
        let faults: Faults =
            "429=0.2, 5xx=0.2,queued=0.2,slow=0.1,drop=0.1,malformed=0.1,slow-delay-ms=500".parse().unwrap();
        assert_eq!(
            faults,
            Faults {
                too_many_requests: 0.2,
                server_error: 0.2,
                queued: 0.2,
                slow: 0.1,
                slow_delay: Duration::from_millis(500),
                dropped: 0.1,
                malformed: 0.1,
            }
        );
        assert_eq!("".parse::<Faults>(), Ok(Faults::default()));
    }

    #[test]
    fn the_syntax_names_what_is_wrong() {
        let error = |text: &str| text.parse::<Faults>().unwrap_err();
        assert!(error("429=1.5").contains("429 share 1.5 is not between 0 and 1"), "{}", error("429=1.5"));
        assert!(error("5xx=-0.1").contains("not between 0 and 1"));
        assert!(error("timeout=0.1").contains("unknown fault \"timeout\""), "{}", error("timeout=0.1"));
        assert!(error("slow").contains("not NAME=VALUE"));
        assert!(error("drop=lots").contains("not a number"));
        assert!(error("slow-delay-ms=2s").contains("not milliseconds"));
        assert!(error("429=0.6,5xx=0.6").contains("add up to"));
        assert!(error("429=NaN").contains("not between 0 and 1"));
    }

    #[test]
    fn each_kind_is_drawn_for_about_its_share() {
        let faults = Faults { too_many_requests: 0.1, server_error: 0.2, slow: 0.3, ..Faults::default() };
        let mut draw = FaultDraw::new(faults, 7, "test");
        for _ in 0..10_000 {
            draw.next(true);
        }
        let counts = draw.counts();
        assert!((800..1200).contains(&counts.too_many_requests), "{counts:?}");
        assert!((1700..2300).contains(&counts.server_error), "{counts:?}");
        assert!((2700..3300).contains(&counts.slow), "{counts:?}");
        assert_eq!(counts.total(), counts.too_many_requests + counts.server_error + counts.slow);
    }

    #[test]
    fn server_errors_rotate_and_drops_alternate() {
        let mut errors = FaultDraw::new(Faults { server_error: 1.0, ..Faults::default() }, 0, "test");
        let codes: Vec<_> = (0..4).map(|_| errors.next(true)).collect();
        let expected = [500, 502, 503, 500].map(|code| Some(Fault::ServerError(code)));
        assert_eq!(codes, expected);

        let mut drops = FaultDraw::new(Faults { dropped: 1.0, ..Faults::default() }, 0, "test");
        let cuts: Vec<_> = (0..3).map(|_| drops.next(true)).collect();
        let expected =
            [Cut::BeforeHead, Cut::AfterHead, Cut::BeforeHead].map(|cut| Some(Fault::Dropped(cut)));
        assert_eq!(cuts, expected);
    }

    #[test]
    fn only_first_asks_are_queued() {
        let mut draw = FaultDraw::new(Faults { queued: 1.0, ..Faults::default() }, 0, "test");
        assert_eq!(draw.next(true), Some(Fault::Queued));
        assert_eq!(draw.next(false), None);
        assert_eq!(draw.counts().queued, 1);
    }

    #[test]
    fn halves_are_cut_on_character_boundaries() {
        assert_eq!(first_half(r#"{"a":1}"#), r#"{"a"#);
        assert_eq!(first_half("ééé"), "é");
        assert_eq!(first_half(""), "");
    }
}
