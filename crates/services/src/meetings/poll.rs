//! [`Poll`]: the running poll of one meeting, owned by its actor: question,
//! answers, votes by key id, and when it closes.

use std::collections::BTreeMap;

use switchboard_core::Frame;
use switchboard_core::store::meetings::{KeyId, PollRecord};
use tokio::time::Instant;

use super::wire::{self, PollMsg};

/// A running poll. Its timer is its own `deadline`: the actor waits for it only
/// while this poll is the running one, so an aborted poll's time can never
/// close the next poll.
#[derive(Debug, Clone)]
pub(crate) struct Poll {
    /// The stored poll's id.
    pub(crate) id: i64,
    pub(crate) question: String,
    pub(crate) answers: Vec<String>,
    /// Key id -> index of the answer.
    pub(crate) votes: BTreeMap<KeyId, usize>,
    /// When it closes.
    pub(crate) deadline: Instant,
}

impl Poll {
    /// A poll re-read from the store after a restart; `now_ms` is the wall clock.
    pub(crate) fn restored(record: PollRecord, now_ms: i64) -> Poll {
        let left = u64::try_from(record.closes_at_ms.saturating_sub(now_ms)).unwrap_or(0);
        Poll {
            id: record.id,
            question: record.question,
            votes: record
                .votes
                .into_iter()
                .filter(|(_, a)| *a < record.answers.len())
                .collect(),
            answers: record.answers,
            deadline: Instant::now() + std::time::Duration::from_millis(left),
        }
    }

    /// Votes per answer; always five numbers, as the page expects.
    pub(crate) fn tally(&self) -> [u32; 5] {
        let mut t = [0; 5];
        for &a in self.votes.values() {
            if let Some(n) = t.get_mut(a) {
                *n += 1;
            }
        }
        t
    }

    /// The `poll` frames: (for admins, with who voted; for everyone else).
    pub(crate) fn frames(&self) -> (Frame, Frame) {
        let mut msg = PollMsg {
            question: &self.question,
            answers: &self.answers,
            tally: self.tally(),
            voted: Some(self.votes.keys().copied().collect()),
        };
        let admin = wire::poll(Some(&msg));
        msg.voted = None;
        (admin, wire::poll(Some(&msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tally_counts_and_restoring_keeps_the_deadline() {
        let rec = PollRecord {
            id: 3,
            question: "Q".into(),
            answers: vec!["a".into(), "b".into()],
            closes_at_ms: 10_000,
            votes: vec![(1, 0), (2, 1), (3, 1), (4, 7)],
        };
        let p = Poll::restored(rec, 4_000);
        assert_eq!(p.tally(), [1, 2, 0, 0, 0]);
        assert_eq!(p.votes.len(), 3, "a vote for a missing answer is dropped");
        assert_eq!(
            p.deadline - Instant::now(),
            std::time::Duration::from_secs(6)
        );
        let (admin, member) = p.frames();
        assert!(
            std::str::from_utf8(admin.payload())
                .unwrap()
                .contains(r#""voted":[1,2,3]"#)
        );
        assert!(
            std::str::from_utf8(member.payload())
                .unwrap()
                .contains(r#""voted":null"#)
        );
        let late = Poll::restored(
            PollRecord {
                id: 4,
                question: "Q".into(),
                answers: vec![],
                closes_at_ms: 1,
                votes: vec![],
            },
            5,
        );
        assert_eq!(late.deadline, Instant::now());
    }
}
