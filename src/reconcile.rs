//! Delete reconciliation: which replica rows no longer exist at the origin, found by counting
//! primary-key ranges on both sides instead of reading rows.
//!
//! Right after an incremental pass has caught up, the replica holds every origin row plus the
//! rows deleted at the origin since they were copied, so for any key range
//! `count(replica) - count(origin)` is the number of deletes in it. The pass cuts the replica's
//! key space into ranges (boundaries are the replica's own keys, found locally: no origin scan
//! to plan), counts many ranges at the origin per round trip, splits the ranges whose counts
//! differ, and for small differing ranges asks the origin which of the replica's keys it no
//! longer has, deciding by its own equality (collation). A replica row is deleted only when
//! the origin said its key is absent.
//!
//! `Pass` is that algorithm with no IO (sans-io, like the MySQL codec): it says what it needs
//! next (`Pass::need`), the engine fetches it from the replica or the origin and hands the
//! answer back. The tests below drive it against in-memory key sets.
//!
//! Correctness:
//! - Never deletes a present key: a key is deleted only when the origin answered that it has no
//!   row with that key, and only in a small range where every row the origin counted matched one
//!   of the replica's keys (`present >= count(origin)`). That second condition holds back deletes
//!   in a range that also holds rows the replica has not received yet (inserted after the
//!   incremental pass, or with a NULL cursor); the next pass, after they have arrived, finds them.
//!   It also guards against a key the origin could not match for a reason other than deletion.
//! - Finds every delete when the replica has caught up: a range whose counts are equal then has
//!   no deletes, since every origin row in it is also a replica row. Counts compare the same set
//!   of keys on both sides only if both order keys alike, so the origin compares keys as the
//!   replica orders them (bytes for text; see `Dialect::range_column`). Where it cannot, a delete
//!   may be missed, never a present row deleted.
//! - Resumable: `progress` is the key up to which every replica key has been checked. Deletes are
//!   committed with it; a pass resumed from it redoes at most the ranges after it.

use crate::source::KeyRange;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// A primary key's values, in key-column order.
pub type Key = Vec<Value>;

/// The sizes that shape a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Top-level ranges per window: a window is the part of the replica one round of counting covers.
    pub window: usize,
    /// Replica rows per top-level range.
    pub step: u64,
    /// How many sub-ranges a differing range is split into.
    pub fanout: u64,
    /// A differing range of at most this many rows has its keys checked one by one.
    pub leaf: u64,
    /// At most this many ranges per `Need::Count` and per `Need::Split`.
    pub max_ranges: usize,
    /// At most this many keys per `Need::Keys` and `Need::Absent` (more for a single range).
    pub max_keys: usize,
}

impl Default for Tuning {
    /// 4,096 ranges of 256 rows: a window of a million rows is counted at the origin in one
    /// round trip of index range counts. With deletes spread thinly (1 in 1,000 rows) about a
    /// fifth of the ranges differ (with ranges of 1,024 rows, two thirds would, and the origin
    /// would count most rows twice); they are split into ranges of 32 rows, and the differing
    /// ones (about one per delete) send their 32 keys to the origin. Counting a row at the origin
    /// costs about a tenth of looking a key up, so a range is split rather than checked key by
    /// key until it is small.
    fn default() -> Self {
        Tuning { window: 4096, step: 256, fanout: 32, leaf: 32, max_ranges: 16_384, max_keys: 32_768 }
    }
}

/// Where a pass stands, stored with the deletes it commits: every replica key up to `after`
/// (inclusive, in the replica's order) has been checked; `None` before the first range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub after: Option<Key>,
}

/// One range of the current window of the replica.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    range: KeyRange,
    /// Replica rows in the range.
    rows: u64,
    /// Origin rows in the range, once counted and found to differ.
    origin: Option<u64>,
    state: State,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Needs its origin count.
    Count,
    /// Differs and is large: needs its replica boundaries to be split.
    Split,
    /// Differs and is small: needs its replica keys.
    Keys,
    /// Has its keys: needs the origin's answer which of them are absent.
    Check(Vec<Key>),
    Done,
}

/// One range to split: the replica keys `step`, `2 × step`, ... rows after `range.lo`, at most `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub range: KeyRange,
    pub step: u64,
    pub max: usize,
}

/// What the pass needs next. Each is answered by the matching `Pass::on_*` method, except
/// `Commit` (carried out by the caller) and `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// The next window of the replica (`on_window`): the keys `step`, `2 × step`, ... rows after
    /// `after` (exclusive; from the first key when `None`), at most `max` of them; when fewer
    /// come back, also the replica's last key and the number of rows after the last of them.
    Window { after: Option<Key>, step: u64, max: usize },
    /// Boundaries inside each range (`on_splits`).
    Split(Vec<Split>),
    /// The origin's count in each range, where it is not `rows[i]`, the replica's (`on_counts`).
    Count { ranges: Vec<KeyRange>, rows: Vec<u64> },
    /// The replica's keys in each range, in order (`on_keys`).
    Keys(Vec<KeyRange>),
    /// Which of these keys the origin does not have (`on_absent`).
    Absent(Vec<Key>),
    /// Delete these keys from the replica and store `progress`, in one transaction.
    Commit { delete: Vec<Key>, progress: Progress },
    /// Every replica key has been checked.
    Done,
}

/// One reconciliation pass over a replica table; see the module documentation.
#[derive(Debug, Clone)]
pub struct Pass {
    t: Tuning,
    /// Every replica key up to here has been checked (the end of the last finished window).
    after: Option<Key>,
    /// Where the pass stood when this run took it up.
    resumed_at: Option<Key>,
    nodes: Vec<Node>,
    /// The current window reaches the replica's last key.
    last_window: bool,
    /// Keys found absent and not yet handed out in a `Commit`.
    deletes: Vec<Key>,
    /// A window finished since the last `Commit`.
    window_done: bool,
    finished: bool,
    /// Keys the origin said were absent, but in a range where it also counted rows the replica
    /// does not have: left for a later pass.
    pub withheld: u64,
}

impl Pass {
    pub fn new(t: Tuning) -> Self {
        Pass::resume(t, Progress { after: None })
    }

    pub fn resume(t: Tuning, p: Progress) -> Self {
        let t = Tuning {
            window: t.window.max(1),
            step: t.step.max(1),
            fanout: t.fanout.max(2),
            leaf: t.leaf.max(1),
            max_ranges: t.max_ranges.max(1),
            max_keys: t.max_keys.max(1),
        };
        Pass {
            t,
            resumed_at: p.after.clone(),
            after: p.after,
            nodes: Vec::new(),
            last_window: false,
            deletes: Vec::new(),
            window_done: false,
            finished: false,
            withheld: 0,
        }
    }

    /// What to store when the run stops before the pass is done: the end of the checked prefix
    /// of the current window.
    pub fn progress(&self) -> Progress {
        Progress { after: self.checked_prefix() }
    }

    /// Whether this run has moved the checked prefix. A run stops at its time budget (before an
    /// origin request, never with a `Commit` pending) only once it has, so that even a budget
    /// shorter than one window's round trips moves on.
    pub fn progressed(&self) -> bool {
        self.finished || self.checked_prefix() != self.resumed_at
    }

    /// The end of the leading run of checked ranges of the current window, or where it began.
    fn checked_prefix(&self) -> Option<Key> {
        let done = self.nodes.iter().take_while(|n| n.state == State::Done).last();
        done.map_or_else(|| self.after.clone(), |n| Some(n.range.hi.clone()))
    }

    /// Nodes in `state`'s kind that the next request covers, in key order.
    fn batch(&self, kind: fn(&State) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        let mut keys = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            if !kind(&n.state) {
                continue;
            }
            let weight = match &n.state {
                State::Keys => n.rows as usize,
                State::Check(k) => k.len(),
                _ => 1,
            };
            let cap = match &n.state {
                State::Keys | State::Check(_) => self.t.max_keys,
                _ => self.t.max_ranges,
            };
            if !out.is_empty() && keys + weight > cap {
                break;
            }
            keys += weight;
            out.push(i);
        }
        out
    }

    pub fn need(&mut self) -> Need {
        if !self.deletes.is_empty() {
            return Need::Commit { delete: std::mem::take(&mut self.deletes), progress: self.progress() };
        }
        if !self.nodes.is_empty() && self.nodes.iter().all(|n| n.state == State::Done) {
            self.after = self.nodes.last().map(|n| n.range.hi.clone());
            self.nodes.clear();
            self.window_done = true;
            self.finished = self.last_window;
        }
        if self.nodes.is_empty() {
            if self.finished {
                return Need::Done;
            }
            if std::mem::take(&mut self.window_done) {
                return Need::Commit { delete: Vec::new(), progress: self.progress() };
            }
            return Need::Window { after: self.after.clone(), step: self.t.step, max: self.t.window };
        }
        let first = self.nodes.iter().find(|n| n.state != State::Done).expect("a node is pending");
        match &first.state {
            State::Count => {
                let (ranges, rows) =
                    self.batch(|s| *s == State::Count).into_iter().map(|i| (self.nodes[i].range.clone(), self.nodes[i].rows)).unzip();
                Need::Count { ranges, rows }
            }
            State::Split => Need::Split(
                self.batch(|s| *s == State::Split)
                    .into_iter()
                    .map(|i| {
                        let n = &self.nodes[i];
                        let step = self.split_step(n.rows);
                        Split { range: n.range.clone(), step, max: (n.rows.div_ceil(step) - 1) as usize }
                    })
                    .collect(),
            ),
            State::Keys => Need::Keys(self.batch(|s| *s == State::Keys).into_iter().map(|i| self.nodes[i].range.clone()).collect()),
            State::Check(_) => Need::Absent(
                self.batch(|s| matches!(s, State::Check(_)))
                    .into_iter()
                    .flat_map(|i| match &self.nodes[i].state {
                        State::Check(k) => k.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            State::Done => unreachable!("skipped above"),
        }
    }

    /// Rows per sub-range when a range of `rows` rows (more than `leaf`) is split: fewer than `rows`.
    fn split_step(&self, rows: u64) -> u64 {
        rows.div_ceil(self.t.fanout).max(self.t.leaf)
    }

    /// The answer to `Need::Window`: the keys found every `step` rows, and when there were fewer
    /// than asked for, `tail`: the replica's last key and how many rows follow the last of them.
    pub fn on_window(&mut self, hops: Vec<Key>, tail: Option<(Key, u64)>) {
        let full = hops.len() >= self.t.window;
        let mut lo = self.after.clone();
        for hi in hops.into_iter().take(self.t.window) {
            self.nodes.push(Node {
                range: KeyRange { lo: lo.clone(), hi: hi.clone() },
                rows: self.t.step,
                origin: None,
                state: State::Count,
            });
            lo = Some(hi);
        }
        if !full {
            self.last_window = true;
            if let Some((hi, rows)) = tail.filter(|(_, rows)| *rows > 0) {
                self.nodes.push(Node { range: KeyRange { lo, hi }, rows, origin: None, state: State::Count });
            }
        }
        if self.nodes.is_empty() {
            self.finished = true;
        }
    }

    /// The answer to `Need::Count`: `(index into the ranges asked, origin count)` for the ranges
    /// whose origin count is not the replica's; the others are equal, so have no deletes.
    pub fn on_counts(&mut self, differing: &[(usize, u64)]) {
        let asked = self.batch(|s| *s == State::Count);
        for &i in &asked {
            self.nodes[i].state = State::Done;
        }
        for &(k, count) in differing {
            let Some(&i) = asked.get(k) else { continue };
            let n = &mut self.nodes[i];
            if count != n.rows {
                n.origin = Some(count);
                n.state = if n.rows <= self.t.leaf { State::Keys } else { State::Split };
            }
        }
    }

    /// The answer to `Need::Split`: for each range asked, the boundary keys found.
    pub fn on_splits(&mut self, boundaries: Vec<Vec<Key>>) {
        let asked = self.batch(|s| *s == State::Split);
        // Replace from the back, so that the earlier indices stay valid.
        for (&i, keys) in asked.iter().zip(boundaries).rev() {
            let node = self.nodes[i].clone();
            let step = self.split_step(node.rows);
            let mut children = Vec::new();
            let mut lo = node.range.lo.clone();
            let mut left = node.rows;
            for hi in keys.into_iter().take((node.rows.div_ceil(step) - 1) as usize) {
                children.push(Node { range: KeyRange { lo: lo.clone(), hi: hi.clone() }, rows: step, origin: None, state: State::Count });
                left -= step;
                lo = Some(hi);
            }
            children.push(Node { range: KeyRange { lo, hi: node.range.hi.clone() }, rows: left, origin: None, state: State::Count });
            self.nodes.splice(i..=i, children);
        }
    }

    /// The answer to `Need::Keys`: the replica's keys in each range asked, in order.
    pub fn on_keys(&mut self, keys: Vec<Vec<Key>>) {
        let asked = self.batch(|s| *s == State::Keys);
        for (&i, k) in asked.iter().zip(keys) {
            self.nodes[i].state = State::Check(k);
        }
    }

    /// The answer to `Need::Absent`: indices into the keys asked about that the origin does not have.
    pub fn on_absent(&mut self, absent: &[usize]) {
        let mut absent = absent.to_vec();
        absent.sort_unstable();
        absent.dedup();
        let mut offset = 0usize;
        for i in self.batch(|s| matches!(s, State::Check(_))) {
            let n = &mut self.nodes[i];
            let State::Check(keys) = std::mem::replace(&mut n.state, State::Done) else { continue };
            let end = offset + keys.len();
            let gone: Vec<Key> = absent.iter().filter(|&&a| a >= offset && a < end).map(|&a| keys[a - offset].clone()).collect();
            let present = (keys.len() - gone.len()) as u64;
            if present >= n.origin.unwrap_or(0) {
                self.deletes.extend(gone);
            } else {
                self.withheld += gone.len() as u64;
            }
            offset = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Keys as the in-memory sides compare them: one or two integer columns.
    fn ints(k: &Key) -> (i64, i64) {
        (k[0].as_i64().unwrap(), k.get(1).and_then(Value::as_i64).unwrap_or(0))
    }

    fn key(k: (i64, i64), width: usize) -> Key {
        if width == 1 {
            vec![Value::Integer(k.0)]
        } else {
            vec![Value::Integer(k.0), Value::Integer(k.1)]
        }
    }

    fn in_range(r: &KeyRange, k: (i64, i64)) -> bool {
        r.lo.as_ref().is_none_or(|lo| k > ints(lo)) && k <= ints(&r.hi)
    }

    /// The replica and the origin as sorted key sets, answering the pass's needs; `stop_after`
    /// ends the run before the origin request after that many (once it has moved on), as the
    /// engine's time budget does.
    struct Sides {
        replica: BTreeSet<(i64, i64)>,
        origin: BTreeSet<(i64, i64)>,
        width: usize,
        deleted: Vec<(i64, i64)>,
        origin_round_trips: usize,
    }

    impl Sides {
        fn run(&mut self, pass: &mut Pass, stop_after: Option<usize>) -> Option<Progress> {
            let mut asked = 0;
            loop {
                let need = pass.need();
                if matches!(need, Need::Count { .. } | Need::Absent(_)) {
                    asked += 1;
                    if stop_after.is_some_and(|s| asked > s) && pass.progressed() {
                        return Some(pass.progress());
                    }
                }
                match need {
                    Need::Window { after, step, max } => {
                        let after = after.as_ref().map(ints);
                        let rest: Vec<(i64, i64)> = self.replica.iter().copied().filter(|k| after.is_none_or(|a| *k > a)).collect();
                        let hops: Vec<Key> =
                            rest.iter().skip(step as usize - 1).step_by(step as usize).take(max).map(|k| key(*k, self.width)).collect();
                        let tail = if hops.len() < max {
                            let rows = (rest.len() - hops.len() * step as usize) as u64;
                            rest.last().map(|k| (key(*k, self.width), rows))
                        } else {
                            None
                        };
                        pass.on_window(hops, tail);
                    }
                    Need::Split(splits) => {
                        let answer = splits
                            .iter()
                            .map(|s| {
                                let lo = s.range.lo.as_ref().map(ints);
                                self.replica
                                    .iter()
                                    .filter(|k| lo.is_none_or(|l| **k > l))
                                    .skip(s.step as usize - 1)
                                    .step_by(s.step as usize)
                                    .take(s.max)
                                    .map(|k| key(*k, self.width))
                                    .collect()
                            })
                            .collect();
                        pass.on_splits(answer);
                    }
                    Need::Count { ranges, rows } => {
                        self.origin_round_trips += 1;
                        let differing: Vec<(usize, u64)> = ranges
                            .iter()
                            .enumerate()
                            .map(|(i, r)| (i, self.origin.iter().filter(|k| in_range(r, **k)).count() as u64))
                            .filter(|&(i, c)| c != rows[i])
                            .collect();
                        pass.on_counts(&differing);
                    }
                    Need::Keys(ranges) => {
                        let answer = ranges
                            .iter()
                            .map(|r| self.replica.iter().filter(|k| in_range(r, **k)).map(|k| key(*k, self.width)).collect())
                            .collect();
                        pass.on_keys(answer);
                    }
                    Need::Absent(keys) => {
                        self.origin_round_trips += 1;
                        let absent: Vec<usize> =
                            keys.iter().enumerate().filter(|(_, k)| !self.origin.contains(&ints(k))).map(|(i, _)| i).collect();
                        pass.on_absent(&absent);
                    }
                    Need::Commit { delete, .. } => {
                        for k in delete {
                            let k = ints(&k);
                            assert!(self.replica.remove(&k), "deleted {k:?}, which the replica does not have");
                            self.deleted.push(k);
                        }
                    }
                    Need::Done => return None,
                }
            }
        }
    }

    fn small() -> Tuning {
        Tuning { window: 4, step: 8, fanout: 4, leaf: 3, max_ranges: 5, max_keys: 7 }
    }

    /// A replica of `n` keys (every third key missing, so that ranges are not dense), the
    /// origin without `gone` and with `extra` (keys the replica does not have).
    fn sides(n: i64, width: usize, gone: &BTreeSet<i64>, extra: &BTreeSet<i64>) -> Sides {
        let k = |i: i64| if width == 1 { (i * 3, 0) } else { (i / 4, i % 4) };
        let replica: BTreeSet<(i64, i64)> = (0..n).map(k).collect();
        let mut origin: BTreeSet<(i64, i64)> = (0..n).filter(|i| !gone.contains(i)).map(k).collect();
        origin.extend(extra.iter().map(|&i| if width == 1 { (i * 3 + 1, 0) } else { (i / 4, 10 + i % 4) }));
        Sides { replica, origin, width, deleted: Vec::new(), origin_round_trips: 0 }
    }

    #[test]
    fn an_empty_replica_is_done_at_once() {
        let mut s = sides(0, 1, &BTreeSet::new(), &BTreeSet::new());
        let mut p = Pass::new(small());
        assert_eq!(s.run(&mut p, None), None);
        assert!(s.deleted.is_empty());
    }

    #[test]
    fn finds_every_delete_and_nothing_else() {
        let gone: BTreeSet<i64> = [0, 1, 2, 7, 8, 40, 41, 42, 43, 44, 45, 46, 47, 48, 99].into_iter().collect();
        let mut s = sides(100, 1, &gone, &BTreeSet::new());
        let mut p = Pass::new(small());
        assert_eq!(s.run(&mut p, None), None);
        let want: BTreeSet<(i64, i64)> = gone.iter().map(|&i| (i * 3, 0)).collect();
        assert_eq!(s.deleted.iter().copied().collect::<BTreeSet<_>>(), want);
        assert_eq!(s.replica, s.origin);
    }

    #[test]
    fn nothing_deleted_costs_one_count_per_window() {
        let mut s = sides(10_000, 1, &BTreeSet::new(), &BTreeSet::new());
        let mut p = Pass::new(Tuning::default());
        assert_eq!(s.run(&mut p, None), None);
        assert!(s.deleted.is_empty());
        assert_eq!(s.origin_round_trips, 1);
    }

    #[test]
    fn a_range_that_also_gained_rows_is_held_back_until_they_arrive() {
        // Key 10 is gone at the origin and key 11 (3 × 3 + 1 = 10 in origin numbering) is new
        // there: the small range holding both counts 1 origin row the replica has not got.
        let gone: BTreeSet<i64> = [3, 50].into_iter().collect();
        let extra: BTreeSet<i64> = [4].into_iter().collect();
        let mut s = sides(60, 1, &gone, &extra);
        let mut p = Pass::new(small());
        s.run(&mut p, None);
        assert!(s.deleted.iter().all(|k| !s.origin.contains(k)));
        assert!(s.deleted.contains(&(150, 0)), "a delete in a range without new rows is found: {:?}", s.deleted);
        // Once the new row has reached the replica (the next incremental pass), the next pass finds the rest.
        s.replica.insert((13, 0));
        let mut p = Pass::new(small());
        s.run(&mut p, None);
        assert_eq!(s.replica, s.origin);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// With the replica caught up (every origin key is in it), one pass deletes exactly the
        /// replica keys the origin lacks, whatever the tuning, the key width and where the time
        /// budget cuts the runs.
        #[test]
        fn a_caught_up_replica_ends_equal_to_the_origin(
            n in 0i64..400,
            width in 1usize..=2,
            gone in proptest::collection::btree_set(0i64..400, 0..80),
            window in 1usize..6, step in 1u64..20, fanout in 2u64..6, leaf in 1u64..8,
            max_ranges in 1usize..10, max_keys in 1usize..12,
            cut in proptest::option::of(1usize..30),
        ) {
            let t = Tuning { window, step, fanout, leaf, max_ranges, max_keys };
            let mut s = sides(n, width, &gone, &BTreeSet::new());
            let expected: BTreeSet<(i64, i64)> = s.replica.difference(&s.origin).copied().collect();
            let mut progress = None;
            for _ in 0..10_000 {
                let mut p = match progress.take() { Some(pr) => Pass::resume(t, pr), None => Pass::new(t) };
                match s.run(&mut p, cut) {
                    None => break,
                    Some(pr) => progress = Some(pr),
                }
            }
            prop_assert!(progress.is_none(), "the pass finishes across cut runs");
            prop_assert_eq!(s.deleted.iter().copied().collect::<BTreeSet<_>>(), expected);
            prop_assert_eq!(&s.replica, &s.origin);
        }

        /// With keys the replica has not received yet at the origin too (inserted after the
        /// incremental pass), a pass never deletes a key the origin has; once they have arrived,
        /// the next pass leaves the replica equal to the origin.
        #[test]
        fn new_origin_rows_never_cause_a_wrong_delete(
            n in 0i64..300,
            width in 1usize..=2,
            gone in proptest::collection::btree_set(0i64..300, 0..60),
            extra in proptest::collection::btree_set(0i64..300, 0..60),
            window in 1usize..6, step in 1u64..20, fanout in 2u64..6, leaf in 1u64..8,
        ) {
            let t = Tuning { window, step, fanout, leaf, max_ranges: 6, max_keys: 9 };
            let mut s = sides(n, width, &gone, &extra);
            let had = s.replica.clone();
            prop_assert_eq!(s.run(&mut Pass::new(t), None), None);
            for k in &s.deleted {
                prop_assert!(!s.origin.contains(k), "deleted {:?}, which the origin has", k);
                prop_assert!(had.contains(k));
            }
            let new: Vec<(i64, i64)> = s.origin.difference(&had).copied().collect();
            s.replica.extend(new);
            prop_assert_eq!(s.run(&mut Pass::new(t), None), None);
            prop_assert_eq!(&s.replica, &s.origin);
        }
    }
}
